#!/usr/bin/env python3
"""scripts/bench corruption: the data-corruption recovery on a local stack,
its phases timed from the run's own log. Usage: bench-corruption.py DRCTL SCALE"""
import json, os, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_runlog  # noqa: E402

drctl, scale = sys.argv[1], sys.argv[2]
home = tempfile.mkdtemp(prefix="bench-corruption-")
env = dict(os.environ, DRCTL_HOME=home)

def run(*args, **kw):
    return subprocess.run([drctl, *args], env=env, check=True, capture_output=True, text=True, **kw)

try:
    t = time.monotonic()
    run("local", "up", "--home", home, "--scale", scale)
    up = time.monotonic() - t
    time.sleep(2)
    damage = json.loads(run("local", "corrupt", "muejam-db-prod", "--kind", "orphans", "--rows", "5",
                            "--output", "json", "--home", home).stdout)
    time.sleep(3)
    request = json.load(open("events/data-corruption.json"))
    request.update({"resolution_seconds": 1, "poll_interval_seconds": 1, "approval_timeout_seconds": 300})
    path = os.path.join(home, "input.json")
    json.dump(request, open(path, "w"))
    approved = ('RequestApproval:1:return={"approved":true,"by":"bench",'
                '"at":"2026-01-01T00:00:00Z","reason":null}')
    t = time.monotonic()
    out = subprocess.run([drctl, "run", "data-corruption", "--input", path, "--local", "--virtual-time",
                          "--name", "bench-1", "--output", "json", "--fault", approved],
                         env=env, capture_output=True, text=True)
    total = time.monotonic() - t
    if out.returncode != 0:
        sys.exit(f"the recovery failed: {out.stdout[-2000:]}{out.stderr[-2000:]}")
    spans = bench_runlog.spans(out.stderr)
    result = json.loads(out.stdout)
    report = json.load(open(result["output"]["report"]["json_location"]))
    def fig(state):
        return bench_runlog.fig(spans, state)
    print(f"data-corruption at scale {scale} (damage: 5 authors deleted behind the foreign keys)")
    print(f"  stack up                     {up:.1f} s")
    print(f"  recovery, end to end         {total:.1f} s (virtual waits, approval answered at once)")
    print(f"  scope (verifier on primary)  {fig('Scope')}")
    print(f"  stop writes                  {fig('StopWrites')}")
    print(f"  candidate restore (slowest)  {fig('StartCandidate')}  [{len(spans.get('StartCandidate', []))} candidates]")
    print(f"  candidate check (slowest)    {fig('CheckCandidate')}")
    print(f"  search round (slowest)       {fig('SearchRound')}  [{report['search']['rounds']} rounds, bound {report['search']['rounds_bound']}]")
    print(f"  chosen restore               {fig('StartRestore')}")
    print(f"  verification                 {fig('VerifyRestore')}")
    print(f"  loss assessment              {fig('AssessLoss')}")
    print(f"  RTO {report['rto']['achieved_seconds']:.1f} s, RPO {report['rpo']['achieved_seconds']:.1f} s;"
          f" chosen {report['chosen_moment']}, damage committed after {damage['before']}")
finally:
    subprocess.run([drctl, "local", "down", "--home", home, "--remove-home"], env=env, capture_output=True)
