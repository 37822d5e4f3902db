"""The template's two deployments, as CloudFormation would create them.

The stack is deployed twice with the same PrimaryRegion and BackupRegion:
armed in PrimaryRegion, standby in BackupRegion (it runs the region failover
when the primary region is gone). With the conditions evaluated for each
deployment, on the template as SAM transforms it, checks that:

- the standby arms nothing: no alarm, every schedule and every rule started
  by an alarm disabled, and it creates nothing the primary owns (the
  registry, the secret);
- the primary arms everything: the schedules and the alarm rule enabled, the
  failover's alarm there;
- the rules that follow our own executions (sweeps) run in both;
- each deployment's resources refer only to resources that deployment has;
- every function names the registry by the global table the primary creates,
  in its own region (the replica, in the standby), and may use it;
- the secret the primary creates is replicated to the standby's region;
- each call of the region failover is allowed in the region it goes to
  (NEEDS), in both deployments.

Usage: deployments.py TEMPLATE. Prints one problem per line; exits 0 when
there is none, 1 when there are problems, 2 when it cannot check.
"""

import sys

from resource_types import (CannotTransform, Template, Unresolvable, as_list, statements,
                            transformed)

# (function, action) -> the region its calls go to: "primary" (the failed
# region, asked from wherever the run is), "backup" (where the region failover
# restores) or "here" (the deployment's own region).
NEEDS = {
    ("ConfirmRegionFunction", "rds:DescribeDBInstances"): "primary",
    ("ConfirmRegionFunction", "rds:DescribeDBSnapshots"): "backup",
    ("ChooseCopyFunction", "rds:DescribeDBSnapshots"): "backup",
    ("RegionRestoreFunction", "rds:RestoreDBInstanceFromDBSnapshot"): "backup",
    ("RegionRestoreFunction", "rds:DescribeDBInstances"): "backup",
    ("RegionRestoreFunction", "rds:DeleteDBInstance"): "backup",
    ("VerifyRegionRestoreFunction", "rds:DescribeDBInstances"): "backup",
    ("VerifyRegionRestoreFunction", "secretsmanager:GetSecretValue"): "here",
    ("ProbeRecordFunction", "secretsmanager:GetSecretValue"): "here",
    ("DescribeInstanceFunction", "rds:DescribeDBInstances"): "backup",
    ("CheckDatabaseFunction", "rds:DescribeDBInstances"): "backup",
    ("CreateReplicaFunction", "rds:CreateDBInstanceReadReplica"): "backup",
    ("ScaleFleetFunction", "autoscaling:SetDesiredCapacity"): "backup",
}


class Deployment(Template):
    """The template in one region, with its conditions decided."""

    def __init__(self, doc, region, overrides=None):
        super().__init__(doc, region)
        self.overrides = overrides or {}
        self.decided = {}

    def parameter(self, name):
        if name in self.overrides:
            return self.overrides[name]
        default = self.parameters[name].get("Default")
        if default is None:
            raise Unresolvable(f"parameter {name} has no default: give it to the check")
        return ",".join(str(d) for d in default) if isinstance(default, list) else str(default)

    def ref(self, name):
        if name in self.parameters:
            return [self.parameter(name)]
        return super().ref(name)

    def condition(self, name):
        if name not in self.decided:
            self.decided[name] = self.truth(self.doc.get("Conditions", {})[name])
        return self.decided[name]

    def truth(self, node):
        (function, argument), = node.items()
        if function == "Condition":
            return self.condition(argument)
        if function == "Fn::Equals":
            left, right = (self.one(a) for a in argument)
            return left == right
        if function == "Fn::Not":
            return not self.truth(argument[0])
        if function == "Fn::And":
            return all(self.truth(a) for a in argument)
        if function == "Fn::Or":
            return any(self.truth(a) for a in argument)
        raise Unresolvable(f"condition function {function}")

    def one(self, node):
        values = self.resolve(node)
        if len(values) != 1:
            raise Unresolvable(f"{node} stands for {values}")
        return values[0]

    def resolve(self, node):
        if isinstance(node, dict) and len(node) == 1:
            (function, argument), = node.items()
            if function == "Fn::If":
                name, when_true, when_false = argument
                return self.resolve(when_true if self.condition(name) else when_false)
            if function == "Fn::Split":
                separator, text = argument
                return [part for value in self.resolve(text) for part in value.split(separator)]
            if function == "Ref" and argument == "AWS::NoValue":
                return []
        return super().resolve(node)

    def exists(self, logical_id):
        condition = self.resources[logical_id].get("Condition")
        return condition is None or self.condition(condition)

    def present(self):
        return {i: r for i, r in self.resources.items() if self.exists(i)}

    def referenced(self, node):
        """The resources a property refers to, through the branches taken."""
        if isinstance(node, list):
            return {name for item in node for name in self.referenced(item)}
        if not isinstance(node, dict):
            return set()
        if len(node) == 1:
            (function, argument), = node.items()
            if function == "Fn::If":
                name, when_true, when_false = argument
                return self.referenced(when_true if self.condition(name) else when_false)
            if function == "Ref":
                return {argument} if argument in self.resources else set()
            if function == "Fn::GetAtt":
                name = argument[0] if isinstance(argument, list) else argument.split(".", 1)[0]
                return {name}
            if function == "Fn::Sub":
                import re
                text, variables = (argument, {}) if isinstance(argument, str) else argument
                names = {n.split(".", 1)[0] for n in re.findall(r"\$\{([^}!]+)\}", text)
                         if n not in variables}
                return ({n for n in names if n in self.resources}
                        | self.referenced(list(variables.values()) if variables else []))
        return {name for value in node.values() for name in self.referenced(value)}


def role_allows(deployment, function, action):
    """The resources a function's role allows an action on."""
    role = deployment.resources.get(f"{function}Role")
    if role is None:
        return None
    allowed = []
    for policy in role.get("Properties", {}).get("Policies", []):
        for statement in statements(policy.get("PolicyDocument", {})):
            if statement.get("Effect") != "Allow" or action not in as_list(statement.get("Action", [])):
                continue
            for node in as_list(statement.get("Resource", [])):
                allowed.extend(deployment.resolve(node))
    return allowed


def region_of(arn):
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 else ""


def check_deployment(doc, role, region, overrides):
    d = Deployment(doc, region, overrides)
    primary, backup = d.parameter("PrimaryRegion"), d.parameter("BackupRegion")
    where = f"{role} ({region})"
    problems = []
    present = d.present()

    for logical_id, resource in present.items():
        missing = sorted(n for n in d.referenced(resource.get("Properties", {}))
                         | set(as_list(resource.get("DependsOn", [])))
                         if n in d.resources and not d.exists(n))
        for name in missing:
            problems.append(f"{where}: {logical_id} refers to {name}, which this deployment does not create")

    alarms = [i for i, r in present.items() if r["Type"] == "AWS::CloudWatch::Alarm"]
    schedules = {i: d.one(r["Properties"].get("State", "ENABLED"))
                 for i, r in present.items() if r["Type"] == "AWS::Scheduler::Schedule"}
    rules = {i: (r["Properties"].get("EventPattern", {}).get("source", []),
                 d.one(r["Properties"].get("State", "ENABLED")))
             for i, r in present.items() if r["Type"] == "AWS::Events::Rule"}
    if not schedules:
        problems.append(f"{where}: no schedule found (has SAM changed how it transforms ScheduleV2?)")
    for logical_id, (sources, state) in sorted(rules.items()):
        if {"aws.cloudwatch", "aws.guardduty"} & set(sources):
            want = "ENABLED" if role == "primary" else "DISABLED"
            if state != want:
                problems.append(f"{where}: the alarm-started rule {logical_id} is {state}, must be {want}")
        elif state != "ENABLED":
            problems.append(f"{where}: the rule {logical_id} ({', '.join(sources)}) is {state}: "
                            f"the sweeps must run in every deployment")
    for logical_id, state in sorted(schedules.items()):
        want = "ENABLED" if role == "primary" else "DISABLED"
        if state != want:
            problems.append(f"{where}: the schedule {logical_id} is {state}, must be {want}")

    tables = {d.one(r["Properties"]["TableName"]): (i, r) for i, r in present.items()
              if r["Type"] == "AWS::DynamoDB::GlobalTable"}
    registries = set()
    for logical_id, resource in present.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        variables = resource["Properties"].get("Environment", {}).get("Variables", {})
        if "TOPOLOGY_TABLE" not in variables:
            continue
        table = d.one(variables["TOPOLOGY_TABLE"])
        registries.add(table)
        want = f"arn:aws:dynamodb:{region}:123456789012:table/{table}"
        if not any(want in (role_allows(d, logical_id, action) or [])
                   for action in ("dynamodb:GetItem", "dynamodb:Scan")):
            problems.append(f"{where}: {logical_id} names the registry {table} but may not "
                            f"read {want}, its replica in this region")
    if len(registries) != 1:
        problems.append(f"{where}: the functions name {len(registries)} registries: {sorted(registries)}")
    for table in registries:
        if role == "primary":
            if table not in tables:
                problems.append(f"{where}: no global table {table} is created for the registry")
            else:
                replicas = {d.one(r["Region"]) for r in tables[table][1]["Properties"].get("Replicas", [])}
                if not {region, backup} <= replicas:
                    problems.append(f"{where}: the registry {table} has replicas {sorted(replicas)}, "
                                    f"needs {region} and {backup}")
        elif table in tables:
            problems.append(f"{where}: creates the registry {table}, which the primary owns")

    secrets = [r for r in present.values() if r["Type"] == "AWS::SecretsManager::Secret"]
    if role == "standby" and secrets:
        problems.append(f"{where}: creates a database secret; the standby reads the primary's replica")
    for secret in secrets:
        replicas = {d.one(r["Region"]) for r in secret["Properties"].get("ReplicaRegions", [])}
        if backup not in replicas:
            problems.append(f"{where}: the database secret is not replicated to {backup}")

    if role == "primary":
        alarm_name = d.parameter("DatabaseAlarmName")
        if not any(d.one(present[a]["Properties"].get("AlarmName", "")) == alarm_name for a in alarms):
            problems.append(f"{where}: no alarm {alarm_name} starts the database failover")
    else:
        # A standby may watch its own executions (a region failover runs
        # there, and a failed one must page); it watches no database (its
        # probe is off).
        watching = [a for a in alarms
                    if d.one(present[a]["Properties"].get("Namespace", "")) != "AWS/States"]
        if watching:
            problems.append(f"{where}: creates alarms {', '.join(sorted(watching))}: a standby watches nothing")

    regions = {"primary": primary, "backup": backup, "here": region}
    for (function, action), target in sorted(NEEDS.items()):
        allowed = role_allows(d, function, action)
        if allowed is None:
            problems.append(f"{where}: no function {function}")
            continue
        want = regions[target]
        if not any(a == "*" or region_of(a) in (want, "*") for a in allowed):
            problems.append(f"{where}: {function} may not {action} in {want} ({target} region), "
                            f"where the region failover needs it (allowed: {allowed})")
    return problems


def main():
    if len(sys.argv) != 2:
        print("usage: deployments.py TEMPLATE", file=sys.stderr)
        return 2
    try:
        doc = transformed(sys.argv[1])
        probe = Deployment(doc, "us-east-1")
        primary, backup = probe.parameter("PrimaryRegion"), probe.parameter("BackupRegion")
        # Every optional trigger configured (GuardDuty's IP set, the app
        # servers' load balancer, the app's EKS cluster): the primary must arm
        # each, the standby none.
        optional = {"BlockedIpSetId": "ipset-id", "EksClusterName": "muejam-prod",
                    "LoadBalancerFullName": "app/muejam-prod-alb/50dc6c495c0c9188",
                    "TargetGroupFullName": "targetgroup/muejam-app/73e2d6bc24d8a067"}
        problems = check_deployment(doc, "primary", primary,
                                    {"CreateDatabaseSecret": "true", **optional})
        problems += check_deployment(doc, "standby", backup,
                                     {"TopologyRegistry": "existing", "CreateDatabaseSecret": "true",
                                      **optional})
    except (CannotTransform, Unresolvable, KeyError) as e:
        print(f"cannot check the deployments: {e!r}")
        return 2
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
