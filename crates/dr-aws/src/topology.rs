//! [`TopologyRegistry`] on DynamoDB: one item per database (partition key
//! `database`), the record as a JSON document and its version as a number,
//! written with a condition on the version read, so two switches racing on
//! the same database cannot both win.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use dr_core::*;

use crate::errors::map_sdk_error;

#[derive(Debug, Clone)]
pub struct DynamoDbTopology {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbTopology {
    /// The table has a string partition key `database`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDbTopology {
            client,
            table: table.into(),
        }
    }
}

fn decode(item: &std::collections::HashMap<String, AttributeValue>) -> DrResult<Topology> {
    let document = item
        .get("document")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| DrError::Internal("a topology item has no document".to_owned()))?;
    let version: u64 = item
        .get("version")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| DrError::Internal("a topology item has no version".to_owned()))?;
    let mut topology: Topology = serde_json::from_str(document)
        .map_err(|e| DrError::Internal(format!("a topology item is unreadable: {e}")))?;
    topology.version = version;
    Ok(topology)
}

#[async_trait]
impl TopologyRegistry for DynamoDbTopology {
    async fn get(&self, database: &str) -> DrResult<Option<Topology>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("database", AttributeValue::S(database.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("reading the topology of {database}"), e))?;
        output.item().map(decode).transpose()
    }

    async fn put(&self, topology: &Topology, expected_version: Option<u64>) -> DrResult<Topology> {
        topology.validate()?;
        let mut stored = topology.clone();
        stored.version = expected_version.unwrap_or(0) + 1;
        let document = serde_json::to_string(&stored)
            .map_err(|e| DrError::Internal(format!("serializing a topology: {e}")))?;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("database", AttributeValue::S(stored.database.clone()))
            .item("version", AttributeValue::N(stored.version.to_string()))
            .item("document", AttributeValue::S(document));
        put = match expected_version {
            None => put.condition_expression("attribute_not_exists(#d)"),
            Some(version) => put
                .condition_expression("#v = :expected")
                .expression_attribute_values(":expected", AttributeValue::N(version.to_string())),
        };
        put = put.expression_attribute_names(
            if expected_version.is_none() {
                "#d"
            } else {
                "#v"
            },
            if expected_version.is_none() {
                "database"
            } else {
                "version"
            },
        );
        match put.send().await {
            Ok(_) => Ok(stored),
            Err(e) => {
                match map_sdk_error(&format!("writing the topology of {}", stored.database), e) {
                    DrError::Conflict(_) => Err(DrError::Conflict(format!(
                        "the topology of {} changed meanwhile (expected version {}): read it again",
                        stored.database,
                        expected_version.map_or("none".to_owned(), |v| v.to_string())
                    ))),
                    other => Err(other),
                }
            }
        }
    }

    async fn delete(&self, database: &str, expected_version: u64) -> DrResult<bool> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("database", AttributeValue::S(database.to_owned()))
            .condition_expression("attribute_not_exists(#d) OR #v = :expected")
            .expression_attribute_names("#d", "database")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(
                ":expected",
                AttributeValue::N(expected_version.to_string()),
            )
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await;
        match deleted {
            // DeleteItem of a missing key succeeds, with no old item.
            Ok(output) => Ok(output.attributes().is_some_and(|a| !a.is_empty())),
            Err(e) => match map_sdk_error(&format!("removing the topology of {database}"), e) {
                DrError::Conflict(_) => Err(DrError::Conflict(format!(
                    "the topology of {database} changed meanwhile (expected version {expected_version}): read it again"
                ))),
                other => Err(other),
            },
        }
    }

    async fn list(&self) -> DrResult<Vec<Topology>> {
        let mut all = crate::lock::scan_all(&self.client, &self.table, "listing topologies")
            .await?
            .iter()
            .map(decode)
            .collect::<DrResult<Vec<_>>>()?;
        all.sort_by(|a, b| a.database.cmp(&b.database));
        Ok(all)
    }
}
