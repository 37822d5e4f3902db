//! Reading `template.yaml` (AWS SAM) for what the local runner needs: each
//! state machine's definition file and its DefinitionSubstitutions, resolved
//! to local values.
//!
//! Resolution locally: `!GetAtt Fn.Arn` of a function becomes
//! `arn:aws:lambda:<region>:<account>:function:<LogicalId>` (handlers are
//! registered under the logical id); `!Ref` of a parameter becomes its
//! Default; `!Ref` of an SNS topic its moto-style ARN; `!Sub` expands
//! `${AWS::Region}`, `${AWS::AccountId}`, parameters and resources the same way;
//! `!If` takes the branch its condition decides with those defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_norway::Value as Yaml;

use crate::error::LoadError;

/// The account moto uses, so that ARNs built here match what moto returns.
pub const LOCAL_ACCOUNT: &str = "123456789012";
pub const LOCAL_REGION: &str = "us-east-1";

/// A state machine declared in the template.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredStateMachine {
    pub logical_id: String,
    /// What `!Ref` of it gives locally: the ARN other definitions start it by.
    pub arn: String,
    /// Relative to the template's directory.
    pub definition_uri: PathBuf,
    pub substitutions: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct SamTemplate {
    resources: BTreeMap<String, Yaml>,
    parameters: BTreeMap<String, Yaml>,
    conditions: BTreeMap<String, Yaml>,
    globals: BTreeMap<String, Yaml>,
    dir: PathBuf,
}

fn text(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl SamTemplate {
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let location = path.display().to_string();
        let source = std::fs::read_to_string(path)
            .map_err(|e| LoadError::new(&location, format!("cannot read: {e}")))?;
        let doc: Yaml = serde_norway::from_str(&source)
            .map_err(|e| LoadError::new(&location, format!("not valid YAML: {e}")))?;
        let section = |name: &str| -> BTreeMap<String, Yaml> {
            doc.get(name)
                .and_then(Yaml::as_mapping)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.clone())))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(SamTemplate {
            resources: section("Resources"),
            parameters: section("Parameters"),
            conditions: section("Conditions"),
            globals: section("Globals"),
            dir: path.parent().map(Path::to_owned).unwrap_or_default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn resource_type(&self, id: &str) -> Option<&str> {
        self.resources.get(id)?.get("Type")?.as_str()
    }

    /// Each function's timeout in seconds (its own `Timeout`, else the
    /// `Globals.Function.Timeout`, else Lambda's default of 3 s).
    pub fn function_timeouts(&self) -> BTreeMap<String, f64> {
        self.function_property("Timeout", 3.0)
    }

    /// Each function's memory in MiB (its own `MemorySize`, else the
    /// `Globals.Function.MemorySize`, else Lambda's default of 128).
    pub fn function_memory_sizes(&self) -> BTreeMap<String, f64> {
        self.function_property("MemorySize", 128.0)
    }

    fn function_property(&self, property: &str, default: f64) -> BTreeMap<String, f64> {
        self.functions()
            .into_iter()
            .map(|id| {
                let own = self.resources[&id]
                    .get("Properties")
                    .and_then(|p| p.get(property))
                    .and_then(Yaml::as_f64);
                let global = self
                    .globals
                    .get("Function")
                    .and_then(|f| f.get(property))
                    .and_then(Yaml::as_f64);
                (id, own.or(global).unwrap_or(default))
            })
            .collect()
    }

    /// Logical ids of every `AWS::Serverless::Function`.
    pub fn functions(&self) -> Vec<String> {
        self.resources
            .keys()
            .filter(|id| self.resource_type(id) == Some("AWS::Serverless::Function"))
            .cloned()
            .collect()
    }

    pub fn state_machines(&self) -> Result<Vec<DeclaredStateMachine>, LoadError> {
        let mut out = Vec::new();
        for id in self.resources.keys() {
            if self.resource_type(id) != Some("AWS::Serverless::StateMachine") {
                continue;
            }
            let props = self.resources[id].get("Properties");
            let uri = props
                .and_then(|p| p.get("DefinitionUri"))
                .and_then(Yaml::as_str)
                .ok_or_else(|| {
                    LoadError::new(
                        format!("resource {id}"),
                        "needs DefinitionUri (a path to the .asl.json)",
                    )
                })?;
            let mut substitutions = BTreeMap::new();
            if let Some(map) = props
                .and_then(|p| p.get("DefinitionSubstitutions"))
                .and_then(Yaml::as_mapping)
            {
                for (k, v) in map {
                    let key = k.as_str().unwrap_or_default().to_owned();
                    let value = self.resolve(v).map_err(|e| {
                        LoadError::new(format!("resource {id} DefinitionSubstitutions.{key}"), e)
                    })?;
                    substitutions.insert(key, value);
                }
            }
            out.push(DeclaredStateMachine {
                logical_id: id.clone(),
                arn: self
                    .reference(id)
                    .map_err(|e| LoadError::new(format!("resource {id}"), e))?,
                definition_uri: PathBuf::from(uri),
                substitutions,
            });
        }
        Ok(out)
    }

    /// Resolves an intrinsic (or plain) value to the string it has locally.
    pub fn resolve(&self, value: &Yaml) -> Result<String, String> {
        if let Some(s) = text(value) {
            return Ok(s);
        }
        if let Some(map) = value.as_mapping() {
            if let Some((k, v)) = map.iter().next() {
                let tagged = match k.as_str() {
                    Some("Ref") => Some("!Ref"),
                    Some("Fn::GetAtt") => Some("!GetAtt"),
                    Some("Fn::Sub") => Some("!Sub"),
                    Some("Fn::Join") => Some("!Join"),
                    Some("Fn::If") => Some("!If"),
                    _ => None,
                };
                if let Some(tag) = tagged {
                    return self.resolve_tag(tag, v);
                }
            }
        }
        match value {
            Yaml::Tagged(tagged) => self.resolve_tag(&tagged.tag.to_string(), &tagged.value),
            other => Err(format!("cannot resolve {other:?} locally")),
        }
    }

    fn resolve_tag(&self, tag: &str, value: &Yaml) -> Result<String, String> {
        match tag {
            "!Ref" => self.reference(&text(value).ok_or("!Ref needs a name")?),
            "!GetAtt" => {
                let (id, attribute) = match value {
                    Yaml::Sequence(items) if items.len() == 2 => (
                        text(&items[0]).ok_or("bad !GetAtt")?,
                        text(&items[1]).ok_or("bad !GetAtt")?,
                    ),
                    other => {
                        let s = text(other).ok_or("bad !GetAtt")?;
                        let (id, attr) = s
                            .split_once('.')
                            .ok_or("!GetAtt needs Resource.Attribute")?;
                        (id.to_owned(), attr.to_owned())
                    }
                };
                self.attribute(&id, &attribute)
            }
            "!Sub" => {
                let (template, variables) = match value {
                    Yaml::Sequence(items) if items.len() == 2 => {
                        let mut vars = BTreeMap::new();
                        for (k, v) in items[1]
                            .as_mapping()
                            .ok_or("!Sub variables must be a mapping")?
                        {
                            vars.insert(text(k).ok_or("bad !Sub variable name")?, self.resolve(v)?);
                        }
                        (text(&items[0]).ok_or("!Sub needs a string")?, vars)
                    }
                    other => (text(other).ok_or("!Sub needs a string")?, BTreeMap::new()),
                };
                let mut out = String::new();
                let mut rest = template.as_str();
                while let Some(start) = rest.find("${") {
                    out.push_str(&rest[..start]);
                    let after = &rest[start + 2..];
                    let end = after.find('}').ok_or("unclosed ${ in !Sub")?;
                    let name = &after[..end];
                    if let Some(value) = variables.get(name) {
                        out.push_str(value);
                        rest = &after[end + 1..];
                        continue;
                    }
                    out.push_str(&match name.split_once('.') {
                        Some((id, attr)) if !name.starts_with("AWS::") => {
                            self.attribute(id, attr)?
                        }
                        _ => self.reference(name)?,
                    });
                    rest = &after[end + 1..];
                }
                out.push_str(rest);
                Ok(out)
            }
            "!Join" => {
                let Yaml::Sequence(items) = value else {
                    return Err("!Join needs [separator, list]".to_owned());
                };
                let separator = items
                    .first()
                    .and_then(text)
                    .ok_or("!Join needs a separator")?;
                let parts = match items.get(1) {
                    Some(Yaml::Sequence(list)) => list
                        .iter()
                        .map(|v| self.resolve(v))
                        .collect::<Result<Vec<_>, _>>()?,
                    Some(other) => self.resolve(other)?.split(',').map(str::to_owned).collect(),
                    None => return Err("!Join needs a list".to_owned()),
                };
                Ok(parts.join(&separator))
            }
            "!If" => match value {
                Yaml::Sequence(items) if items.len() == 3 => {
                    let name = text(&items[0]).ok_or("!If needs a condition's name")?;
                    let chosen = if self.condition(&name)? {
                        &items[1]
                    } else {
                        &items[2]
                    };
                    self.resolve(chosen)
                }
                _ => Err("!If needs [condition, then, else]".to_owned()),
            },
            other => Err(format!("intrinsic {other} is not supported locally")),
        }
    }

    /// A condition of the template, decided with the parameters' defaults
    /// in the local region.
    fn condition(&self, name: &str) -> Result<bool, String> {
        let body = self
            .conditions
            .get(name)
            .ok_or_else(|| format!("{name} is not a condition of the template"))?;
        self.truth(body)
    }

    /// `!Equals`, `!Not`, `!And`, `!Or` and `!Condition`, tagged or in
    /// their `Fn::` form.
    fn truth(&self, value: &Yaml) -> Result<bool, String> {
        let (function, argument) = match value {
            Yaml::Tagged(tagged) => (
                tagged.tag.to_string().trim_start_matches('!').to_owned(),
                &tagged.value,
            ),
            other => {
                let (k, v) = other
                    .as_mapping()
                    .and_then(|m| m.iter().next())
                    .ok_or_else(|| format!("cannot decide {other:?} locally"))?;
                let k = k.as_str().ok_or("a condition function needs a name")?;
                (k.strip_prefix("Fn::").unwrap_or(k).to_owned(), v)
            }
        };
        let items = || -> Result<&Vec<Yaml>, String> {
            argument
                .as_sequence()
                .ok_or_else(|| format!("{function} needs a list"))
        };
        match function.as_str() {
            "Equals" => match items()?.as_slice() {
                [a, b] => Ok(self.resolve(a)? == self.resolve(b)?),
                _ => Err("Equals needs two values".to_owned()),
            },
            "Not" => match items()?.as_slice() {
                [a] => Ok(!self.truth(a)?),
                _ => Err("Not needs one condition".to_owned()),
            },
            "And" => items()?
                .iter()
                .try_fold(true, |all, c| Ok(all && self.truth(c)?)),
            "Or" => items()?
                .iter()
                .try_fold(false, |any, c| Ok(any || self.truth(c)?)),
            "Condition" => self.condition(&text(argument).ok_or("Condition needs a name")?),
            other => Err(format!(
                "condition function {other} is not supported locally"
            )),
        }
    }

    /// The fixed inputs of a resource's scheduled `Events` (`Schedule`,
    /// `ScheduleV2`), by event name, resolved to local values.
    pub fn scheduled_inputs(&self, resource: &str) -> Result<Vec<(String, String)>, LoadError> {
        let events = self.events(resource);
        let mut inputs = Vec::new();
        for (name, event) in &events {
            if !matches!(
                event.get("Type").and_then(Yaml::as_str),
                Some("Schedule" | "ScheduleV2")
            ) {
                continue;
            }
            let name = text(name).unwrap_or_default();
            if let Some(input) = event.get("Properties").and_then(|p| p.get("Input")) {
                let resolved = self
                    .resolve(input)
                    .map_err(|e| LoadError::new(format!("resource {resource} event {name}"), e))?;
                inputs.push((name, resolved));
            }
        }
        Ok(inputs)
    }

    /// Whether a resource has any `Events` (a trigger other than a state machine).
    pub fn has_events(&self, resource: &str) -> bool {
        !self.events(resource).is_empty()
    }

    /// The functions a function's asynchronous invocations hand their
    /// record to (`EventInvokeConfig.DestinationConfig`, `Type: Lambda`,
    /// `Destination: !GetAtt <Function>.Arn`), as (`OnSuccess` or
    /// `OnFailure`, the destination's logical id).
    pub fn lambda_destinations(&self, resource: &str) -> Vec<(String, String)> {
        let Some(config) = self
            .resources
            .get(resource)
            .and_then(|r| r.get("Properties"))
            .and_then(|p| p.get("EventInvokeConfig"))
            .and_then(|c| c.get("DestinationConfig"))
        else {
            return Vec::new();
        };
        ["OnSuccess", "OnFailure"]
            .into_iter()
            .filter_map(|on| {
                let d = config.get(on)?;
                if d.get("Type").and_then(Yaml::as_str) != Some("Lambda") {
                    return None;
                }
                let target = match d.get("Destination")? {
                    Yaml::Tagged(t) if t.tag == "!GetAtt" => text(&t.value)?,
                    other => other
                        .get("Fn::GetAtt")
                        .and_then(Yaml::as_sequence)
                        .and_then(|items| items.first())
                        .and_then(text)
                        .map(|id| format!("{id}.Arn"))?,
                };
                let id = target.strip_suffix(".Arn")?;
                Some((on.to_owned(), id.to_owned()))
            })
            .collect()
    }

    /// A resource's `Properties.Events` (empty when it has none).
    fn events(&self, resource: &str) -> serde_norway::Mapping {
        self.resources
            .get(resource)
            .and_then(|r| r.get("Properties"))
            .and_then(|p| p.get("Events"))
            .and_then(Yaml::as_mapping)
            .cloned()
            .unwrap_or_default()
    }

    /// The EventBridge rules of a state machine's `Events`, with their input
    /// transformers resolved to local values.
    pub fn event_rules(&self, state_machine: &str) -> Result<Vec<EventRule>, LoadError> {
        let location = format!("resource {state_machine}");
        let events = self.events(state_machine);
        let mut rules = Vec::new();
        for (name, event) in &events {
            if event.get("Type").and_then(Yaml::as_str) != Some("EventBridgeRule") {
                continue;
            }
            let name = text(name).unwrap_or_default();
            let props = event.get("Properties");
            let transformer = props.and_then(|p| p.get("InputTransformer"));
            let paths = transformer
                .and_then(|t| t.get("InputPathsMap"))
                .and_then(Yaml::as_mapping)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
                        .collect()
                })
                .unwrap_or_default();
            let template = transformer
                .and_then(|t| t.get("InputTemplate"))
                .map(|t| self.resolve(t))
                .transpose()
                .map_err(|e| LoadError::new(format!("{location} event {name}"), e))?;
            rules.push(EventRule {
                name,
                input_paths: paths,
                input_template: template,
            });
        }
        Ok(rules)
    }
}

impl SamTemplate {
    fn reference(&self, name: &str) -> Result<String, String> {
        match name {
            "AWS::Region" => return Ok(LOCAL_REGION.to_owned()),
            "AWS::AccountId" => return Ok(LOCAL_ACCOUNT.to_owned()),
            "AWS::StackName" => return Ok("local".to_owned()),
            "AWS::Partition" => return Ok("aws".to_owned()),
            _ => {}
        }
        if let Some(parameter) = self.parameters.get(name) {
            return parameter
                .get("Default")
                .and_then(text)
                .ok_or_else(|| format!("parameter {name} has no Default to use locally"));
        }
        match self.resource_type(name) {
            Some("AWS::SNS::Topic") => Ok(format!(
                "arn:aws:sns:{LOCAL_REGION}:{LOCAL_ACCOUNT}:{}",
                self.property(name, "TopicName")
                    .unwrap_or_else(|| name.to_owned())
            )),
            Some("AWS::Serverless::Function") => Ok(name.to_owned()),
            Some("AWS::Serverless::StateMachine") => Ok(format!(
                "arn:aws:states:{LOCAL_REGION}:{LOCAL_ACCOUNT}:stateMachine:{}",
                self.property(name, "Name")
                    .unwrap_or_else(|| name.to_owned())
            )),
            Some(_) => Ok(name.to_owned()),
            None => Err(format!(
                "{name} is neither a parameter nor a resource of the template"
            )),
        }
    }

    fn property(&self, id: &str, property: &str) -> Option<String> {
        text(self.resources.get(id)?.get("Properties")?.get(property)?)
    }

    fn attribute(&self, id: &str, attribute: &str) -> Result<String, String> {
        match (self.resource_type(id), attribute) {
            (Some("AWS::Serverless::Function"), "Arn") => Ok(format!(
                "arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT}:function:{id}"
            )),
            (Some("AWS::SNS::Topic"), "TopicArn") => self.reference(id),
            (Some("AWS::SNS::Topic"), "TopicName") => Ok(self
                .property(id, "TopicName")
                .unwrap_or_else(|| id.to_owned())),
            (Some("AWS::Serverless::StateMachine"), "Name") => {
                Ok(self.property(id, "Name").unwrap_or_else(|| id.to_owned()))
            }
            (Some("AWS::S3::Bucket"), "Arn") => Ok(format!("arn:aws:s3:::{}", id.to_lowercase())),
            (Some(t), _) => Err(format!(
                "!GetAtt {id}.{attribute} ({t}) is not supported locally"
            )),
            (None, _) => Err(format!("{id} is not a resource of the template")),
        }
    }
}

/// An EventBridge rule that starts a state machine.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRule {
    pub name: String,
    pub input_paths: BTreeMap<String, String>,
    pub input_template: Option<String>,
}

impl EventRule {
    /// The execution input EventBridge would send for `event`: each
    /// `<name>` in the template is replaced by the value at its path (a JSON
    /// value where it stands alone, the bare text inside a quoted string).
    pub fn transform(&self, event: &serde_json::Value) -> Result<serde_json::Value, String> {
        let Some(template) = &self.input_template else {
            return Ok(event.clone());
        };
        let mut out = String::new();
        let mut rest = template.as_str();
        let mut in_string = false;
        while let Some(start) = rest.find('<') {
            let before = &rest[..start];
            in_string = before.chars().fold(
                in_string,
                |inside, c| if c == '"' { !inside } else { inside },
            );
            out.push_str(before);
            let after = &rest[start + 1..];
            let end = after.find('>').ok_or("unclosed < in InputTemplate")?;
            let key = &after[..end];
            let path = self
                .input_paths
                .get(key)
                .ok_or_else(|| format!("<{key}> is not in InputPathsMap"))?;
            let value = crate::path::JsonPath::parse(path)?
                .select(event)
                .unwrap_or(serde_json::Value::Null);
            match (&value, in_string) {
                (serde_json::Value::String(s), true) => out.push_str(s),
                (other, _) => out.push_str(&other.to_string()),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        serde_json::from_str(&out).map_err(|e| format!("the transformed input is not JSON: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_definition_substitutions_to_local_values() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("template.yaml");
        std::fs::write(
            &path,
            r#"
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Parameters:
  RecordTtl:
    Type: Number
    Default: 60
Resources:
  PromoteReplicaFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: bootstrap
  AlertsTopic:
    Type: AWS::SNS::Topic
  DatabaseFailover:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: statemachines/database-failover.asl.json
      DefinitionSubstitutions:
        PromoteReplicaFunctionArn: !GetAtt PromoteReplicaFunction.Arn
        AlertsTopicArn: !Ref AlertsTopic
        Ttl: !Ref RecordTtl
        Where: !Sub "${AWS::Region}/${AWS::AccountId}"
        Long:
          Fn::GetAtt: [PromoteReplicaFunction, Arn]
"#,
        )
        .expect("write");
        let template = SamTemplate::load(&path).expect("loads");
        assert_eq!(
            template.functions(),
            vec!["PromoteReplicaFunction".to_owned()]
        );
        let machines = template.state_machines().expect("machines");
        assert_eq!(machines.len(), 1);
        let s = &machines[0].substitutions;
        assert_eq!(
            s["PromoteReplicaFunctionArn"],
            "arn:aws:lambda:us-east-1:123456789012:function:PromoteReplicaFunction"
        );
        assert_eq!(s["Long"], s["PromoteReplicaFunctionArn"]);
        assert_eq!(
            s["AlertsTopicArn"],
            "arn:aws:sns:us-east-1:123456789012:AlertsTopic"
        );
        assert_eq!(s["Ttl"], "60");
        assert_eq!(s["Where"], "us-east-1/123456789012");
        assert_eq!(
            machines[0].definition_uri,
            PathBuf::from("statemachines/database-failover.asl.json")
        );
    }

    #[test]
    fn an_if_takes_the_branch_its_condition_decides_with_the_defaults() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("template.yaml");
        std::fs::write(
            &path,
            r#"
Parameters:
  Group:
    Type: String
    Default: ''
  Zone:
    Type: String
    Default: us-east-1
  Groups:
    Type: CommaDelimitedList
    Default: sg-1,sg-2
Conditions:
  HasGroup: !Not [!Equals [!Ref Group, '']]
  Here: !Equals [!Ref 'AWS::Region', !Ref Zone]
  Both: !And [!Condition Here, !Condition HasGroup]
  Either:
    Fn::Or: [!Condition Here, !Condition HasGroup]
Resources:
  Machine:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: m.asl.json
      DefinitionSubstitutions:
        Network: !Sub
          - '{"network": ${Placement}}'
          - Placement: !If
              - HasGroup
              - !Sub ['{"groups": ["${G}"]}', {G: !Join ['", "', !Ref Groups]}]
              - 'null'
        Armed: !If [Both, 'yes', 'no']
        Any:
          Fn::If: [Either, 'yes', 'no']
        Broken: !If [Nowhere, 'a', 'b']
"#,
        )
        .expect("write");
        let template = SamTemplate::load(&path).expect("loads");
        let resolve = |name: &str| {
            let value = template.resources["Machine"]["Properties"]["DefinitionSubstitutions"]
                [name]
                .clone();
            template.resolve(&value)
        };
        assert_eq!(resolve("Network").as_deref(), Ok(r#"{"network": null}"#));
        assert_eq!(resolve("Armed").as_deref(), Ok("no"));
        assert_eq!(resolve("Any").as_deref(), Ok("yes"));
        assert_eq!(
            resolve("Broken"),
            Err("Nowhere is not a condition of the template".to_owned())
        );

        // With the parameter given a default, the other branch.
        let given = std::fs::read_to_string(&path).expect("read").replacen(
            "    Default: ''",
            "    Default: sg-9",
            1,
        );
        std::fs::write(&path, given).expect("write");
        let template = SamTemplate::load(&path).expect("loads");
        let value = template.resources["Machine"]["Properties"]["DefinitionSubstitutions"]
            ["Network"]
            .clone();
        assert_eq!(
            template.resolve(&value).as_deref(),
            Ok(r#"{"network": {"groups": ["sg-1", "sg-2"]}}"#)
        );
    }
}
