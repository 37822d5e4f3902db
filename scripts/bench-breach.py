#!/usr/bin/env python3
"""scripts/bench breach: the security breach on a local stack (SCALE, default
1: 10k users, 676k rows) with N suspicious addresses (ADDRESSES, default
1,000: the seeded breach's four and others from 198.18.0.0/15), each phase
timed from the run's own log. Usage: bench-breach.py DRCTL SCALE ADDRESSES"""
import datetime, ipaddress, json, os, re, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_runlog  # noqa: E402

drctl, scale, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
home = tempfile.mkdtemp(prefix="bench-breach-")
env = dict(os.environ, DRCTL_HOME=home)
fig = bench_runlog.fig

def run(*args):
    return subprocess.run([drctl, *args], env=env, check=True, capture_output=True, text=True)

try:
    t = time.monotonic()
    up_out = run("local", "up", "--home", home, "--scale", scale).stdout
    up = time.monotonic() - t
    endpoint = re.search(r"AWS_ENDPOINT_URL=['\"]?([^'\"\s]+)", up_out).group(1)
    import boto3  # the moto server's own Python has it
    waf = boto3.client("wafv2", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    ip_set = waf.create_ip_set(Name="muejam-blocked", Scope="REGIONAL", IPAddressVersion="IPV4",
                               Addresses=["198.51.100.1/32"])["Summary"]
    request = json.load(open("events/security-breach.json"))
    base = ipaddress.ip_address("198.18.0.1")
    request["addresses"] += [str(base + i) for i in range(max(0, count - len(request["addresses"])))]
    now = datetime.datetime.now(datetime.timezone.utc)
    request["window"] = {"from": (now - datetime.timedelta(days=1)).isoformat(), "to": now.isoformat()}
    request["ip_set"] = {"name": "muejam-blocked", "id": ip_set["Id"], "scope": "REGIONAL"}
    # Containment and impact are measured: telling users waits for a person.
    request["notify_users"] = False
    # A WAF IP set holds one IP version: the IPv6 addresses have their own.
    ip_set_v6 = waf.create_ip_set(Name="muejam-blocked-v6", Scope="REGIONAL", IPAddressVersion="IPV6",
                                  Addresses=[])["Summary"]
    request["ip_set_v6"] = {"name": "muejam-blocked-v6", "id": ip_set_v6["Id"], "scope": "REGIONAL"}
    path = os.path.join(home, "breach.json")
    json.dump(request, open(path, "w"))
    t = time.monotonic()
    out = subprocess.run([drctl, "run", "security-breach", "--input", path, "--local", "--virtual-time",
                          "--name", "bench-breach", "--output", "json"], env=env, capture_output=True, text=True)
    total = time.monotonic() - t
    if out.returncode != 0:
        sys.exit(f"security-breach failed: {out.stdout[-2000:]}{out.stderr[-2000:]}")
    spans = bench_runlog.spans(out.stderr)
    reports = os.path.join(home, "reports", "security-breach")
    report = json.load(open(os.path.join(reports, next(f for f in os.listdir(reports) if f.endswith(".json")))))
    impact = report["impact"]
    print(f"security breach at scale {scale}, {len(request['addresses'])} suspicious addresses")
    print(f"  stack up                        {up:.1f} s")
    print(f"  end to end                      {total:.1f} s")
    print(f"  containment (start → all three) {report['containment']['achieved_seconds']:.2f} s "
          f"(objective {report['containment']['objective_seconds'] / 60:.0f} min)")
    print(f"    plan (request checked)        {fig(spans, 'Plan')}")
    print(f"    revoke API keys               {fig(spans, 'RevokeKeys')}")
    print(f"    rotate the app's password     {fig(spans, 'RotateApplication')}")
    print(f"    rotate the master password    {fig(spans, 'RotateMaster')}")
    print(f"    block in the WAF IP set       {fig(spans, 'BlockAddresses')}")
    print(f"  impact from the audit log       {fig(spans, 'Assess')}: {impact['events']} events, "
          f"{impact['affected_users']} affected users")
    print(f"  affected users' keys            {fig(spans, 'RevokeAffectedKeys')}")
    print(f"  report                          {fig(spans, 'Report')}")
finally:
    subprocess.run([drctl, "local", "down", "--home", home, "--remove-home"], env=env, capture_output=True)
