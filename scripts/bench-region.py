#!/usr/bin/env python3
"""scripts/bench region: snapshot replication into us-west-2, then the region
failover after a us-east-1 outage, on a local stack, each phase timed from
the run's own log. Usage: bench-region.py DRCTL SCALE"""
import json, os, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_runlog  # noqa: E402

drctl, scale = sys.argv[1], sys.argv[2]
home = tempfile.mkdtemp(prefix="bench-region-")
env = dict(os.environ, DRCTL_HOME=home)

def run(*args):
    return subprocess.run([drctl, *args], env=env, check=True, capture_output=True, text=True)

def timed_run(machine, request, name, extra=()):
    path = os.path.join(home, f"{name}.json")
    json.dump(request, open(path, "w"))
    t = time.monotonic()
    out = subprocess.run([drctl, "run", machine, "--input", path, "--local", "--virtual-time",
                          "--name", name, "--output", "json", *extra], env=env, capture_output=True, text=True)
    total = time.monotonic() - t
    if out.returncode != 0:
        sys.exit(f"{machine} failed: {out.stdout[-2000:]}{out.stderr[-2000:]}")
    return total, bench_runlog.spans(out.stderr)

fig = bench_runlog.fig

try:
    t = time.monotonic()
    run("local", "up", "--home", home, "--scale", scale)
    up = time.monotonic() - t
    status = json.loads(run("local", "status", "--home", home, "--output", "json").stdout)
    primary = next(i for i in status["instances"] if i["instance_id"] == "muejam-db-prod")
    size = next(s["size_bytes"] for s in status["snapshots"])
    replication = json.load(open("events/snapshot-replication.json"))
    replication.update({"kms_key_id": "local/us-west-2/snapshots", "poll_interval_seconds": 1,
                        "fresh_within_seconds": 0})
    repl_total, repl = timed_run("snapshot-replication", replication, "bench-repl")

    run("local", "region-outage", "us-east-1", "--home", home)
    request = json.load(open("events/region-failover.json"))
    request.update({"database_port": primary["endpoint"]["port"], "network": None, "instance_class": None,
                    "fleet": None, "poll_interval_seconds": 1})
    approved = ('RequestApproval:1:return={"approved":true,"by":"bench",'
                '"at":"2026-01-01T00:00:00Z","reason":null}')
    total, spans = timed_run("region-failover", request, "bench-region", ("--fault", approved))
    reports = os.path.join(home, "reports", "region-failover")
    report = json.load(open(os.path.join(reports, next(f for f in os.listdir(reports) if f.endswith(".json")))))
    print(f"region failure at scale {scale} (sealed snapshot {size / 1e6:.1f} MB)")
    print(f"  stack up                      {up:.1f} s")
    print(f"  replication run, end to end   {repl_total:.1f} s (a new snapshot taken, copied, verified)")
    print(f"    snapshot of the primary     {fig(repl, 'Source')}")
    print(f"    copy (re-encrypted)         {fig(repl, 'Copy')}")
    print(f"    verify (decrypt + verify)   {fig(repl, 'Verify')}")
    print(f"  region failover, end to end   {total:.1f} s (approval answered at once)")
    print(f"    probe of the record target  {fig(spans, 'ProbeRecord')} (a frozen server: the connect timeout)")
    print(f"    confirm                     {fig(spans, 'Confirm')}")
    print(f"    restore in us-west-2        {fig(spans, 'StartRestore')}")
    print(f"    verification (counts)       {fig(spans, 'VerifyRestore')}")
    print(f"    replica                     {fig(spans, 'CreateReplica')}")
    print(f"  RTO {report['rto']['achieved_seconds']:.1f} s, RPO {report['rpo']['achieved_seconds']:.1f} s "
          f"(copy data time to region found down)")
finally:
    subprocess.run([drctl, "local", "down", "--home", home, "--remove-home"], env=env, capture_output=True)
