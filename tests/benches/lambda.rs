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

/// What one cold start measured.
struct ColdStart {
    init: Duration,
    peak_rss_kib: u64,
    /// The bootstrap's own account of its init (its "initialised" log line):
    /// loading the SDK configuration, then building the adapters.
    aws_config: Option<Duration>,
    clients: Option<Duration>,
    ports: Option<Duration>,
}

/// The log without ANSI colour sequences (the runtime's text format colours
/// field names).
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A `name=<microseconds>` field of the bootstrap's log.
fn logged_micros(log: &str, name: &str) -> Option<Duration> {
    let log = plain(log);
    let at = log.find(&format!("{name}="))? + name.len() + 1;
    let digits: String = log[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().map(Duration::from_micros)
}

/// One cold start and invocation.
fn cold_start(binary: &Path, function: Function) -> Result<ColdStart, String> {
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
                    (Some(init), Some(peak_rss_kib)) => Ok(ColdStart {
                        init,
                        peak_rss_kib,
                        aws_config: None,
                        clients: None,
                        ports: None,
                    }),
                    _ => Err("no init time or RSS".to_owned()),
                };
            }
            Err(_) => break Err("no answer within 30 s".to_owned()),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let mut log = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut out, &mut log);
    }
    result.map(|start| ColdStart {
        aws_config: logged_micros(&log, "aws_config_us"),
        clients: logged_micros(&log, "clients_us"),
        ports: logged_micros(&log, "ports_us"),
        ..start
    })
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
        "bootstrap {} ({binary_mib:.1} MiB unpacked), {RUNS} cold starts per function, medians; targets: init <= {INIT_TARGET_MS} ms, peak RSS <= {RSS_TARGET_MIB} MiB, zip <= {ZIP_TARGET_MIB} MiB",
        binary.display()
    );
    println!("(SDK config, clients, adapters: the bootstrap's own timing of those init phases, in ms; RSS in MiB)");
    println!(
        "{:<18} {:>9} {:>9} {:>10} {:>8} {:>8} {:>8} {:>9}  targets",
        "function",
        "init (ms)",
        "init max",
        "SDK config",
        "clients",
        "adapters",
        "peak RSS",
        "zip (MiB)"
    );
    let mut failures = 0;
    for function in Function::ALL {
        let mut inits = Vec::new();
        let mut rss = Vec::new();
        let mut configs = Vec::new();
        let mut clients = Vec::new();
        let mut adapters = Vec::new();
        for _ in 0..RUNS {
            match cold_start(&binary, function) {
                Ok(start) => {
                    inits.push(start.init);
                    rss.push(start.peak_rss_kib);
                    configs.extend(start.aws_config);
                    clients.extend(start.clients);
                    adapters.extend(start.ports);
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
        let ms = |values: Vec<Duration>| {
            if values.is_empty() {
                "?".to_owned()
            } else {
                format!("{:.1}", median(values).as_secs_f64() * 1000.0)
            }
        };
        let (config_ms, clients_ms, adapters_ms) = (ms(configs), ms(clients), ms(adapters));
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
            "{:<18} {init_ms:>9.1} {init_max_ms:>9.1} {config_ms:>10} {clients_ms:>8} {adapters_ms:>8} {rss_mib:>8.1} {zip_mib:>9.1}  {verdict}",
            function.name()
        );
    }
    if failures > 0 {
        eprintln!("bench lambda: {failures} cold starts failed");
        std::process::exit(1);
    }
}
