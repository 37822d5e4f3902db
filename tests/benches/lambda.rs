//! `scripts/bench lambda`: for each function, the packaged bootstrap's cold
//! init (process start to its first `next` request on a loopback Runtime
//! API), its peak RSS after one invocation, and the zip's size; the median
//! of several cold starts each. Run on the build's own architecture (an
//! emulated binary would time the emulator).

use std::path::Path;
use std::time::{Duration, Instant};

use deploy_checks::runtime_api::{self, RuntimeEvent};
use dr_scenarios::Function;

const RUNS: usize = 7;
const INIT_TARGET_MS: f64 = 20.0;
const RSS_TARGET_MIB: f64 = 32.0;
const ZIP_TARGET_MIB: f64 = 10.0;

/// Peak resident set (VmHWM) of a live process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// One cold start and invocation: (init, peak RSS KiB).
fn cold_start(binary: &Path, function: Function) -> Result<(Duration, u64), String> {
    let (address, events) =
        runtime_api::start(br#"{"unexpected_field": true}"#.to_vec()).map_err(|e| e.to_string())?;
    let mut command = runtime_api::bootstrap_command(binary, Some(function.name()), address);
    let started = Instant::now();
    let mut child = command.spawn().map_err(|e| e.to_string())?;
    let mut ready = None;
    let result = loop {
        match events.recv_timeout(Duration::from_secs(30)) {
            Ok(RuntimeEvent::Ready(at)) => ready = Some(at - started),
            Ok(RuntimeEvent::Answer { .. }) => {
                // the answer is sent before the runtime asks for the next
                // invocation: the peak so far includes the whole invocation.
                break match (ready, peak_rss_kib(child.id())) {
                    (Some(init), Some(rss)) => Ok((init, rss)),
                    _ => Err("no init time or RSS".to_owned()),
                };
            }
            Err(_) => break Err("no answer within 30 s".to_owned()),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn median<T: Copy + Ord>(mut values: Vec<T>) -> T {
    values.sort();
    values[values.len() / 2]
}

fn main() {
    if std::env::var_os("DEPLOY_CHECKS_BOOTSTRAPS").is_none() {
        eprintln!("bench lambda: set DEPLOY_CHECKS_BOOTSTRAPS=target/lambda (scripts/bench lambda does, after scripts/build)");
        std::process::exit(2);
    }
    let binary = runtime_api::bootstrap_path();
    let zip = binary.with_file_name("bootstrap.zip");
    let zip_mib = match std::fs::metadata(&zip) {
        Ok(m) => m.len() as f64 / 1_048_576.0,
        Err(e) => {
            eprintln!("bench lambda: {}: {e}", zip.display());
            std::process::exit(2);
        }
    };
    let binary_mib = std::fs::metadata(&binary)
        .map(|m| m.len() as f64 / 1_048_576.0)
        .unwrap_or(0.0);
    println!(
        "bootstrap {} ({binary_mib:.1} MiB unpacked), {RUNS} cold starts per function; targets: init <= {INIT_TARGET_MS} ms, peak RSS <= {RSS_TARGET_MIB} MiB, zip <= {ZIP_TARGET_MIB} MiB",
        binary.display()
    );
    println!(
        "{:<18} {:>12} {:>12} {:>14} {:>9}  targets",
        "function", "init (ms)", "init max", "peak RSS (MiB)", "zip (MiB)"
    );
    let mut failures = 0;
    for function in Function::ALL {
        let mut inits = Vec::new();
        let mut rss = Vec::new();
        for _ in 0..RUNS {
            match cold_start(&binary, function) {
                Ok((init, peak)) => {
                    inits.push(init);
                    rss.push(peak);
                }
                Err(e) => {
                    eprintln!("{}: {e}", function.name());
                    failures += 1;
                }
            }
        }
        if inits.is_empty() {
            continue;
        }
        let init_ms = median(inits.clone()).as_secs_f64() * 1000.0;
        let init_max_ms = inits.iter().max().map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        let rss_mib = median(rss) as f64 / 1024.0;
        let verdict = if init_ms <= INIT_TARGET_MS
            && rss_mib <= RSS_TARGET_MIB
            && zip_mib <= ZIP_TARGET_MIB
        {
            "met".to_owned()
        } else {
            let mut over = Vec::new();
            if init_ms > INIT_TARGET_MS {
                over.push("init");
            }
            if rss_mib > RSS_TARGET_MIB {
                over.push("RSS");
            }
            if zip_mib > ZIP_TARGET_MIB {
                over.push("zip");
            }
            format!("NOT MET: {}", over.join(", "))
        };
        println!(
            "{:<18} {init_ms:>12.1} {init_max_ms:>12.1} {rss_mib:>14.1} {zip_mib:>9.1}  {verdict}",
            function.name()
        );
    }
    if failures > 0 {
        eprintln!("bench lambda: {failures} cold starts failed");
        std::process::exit(1);
    }
}
