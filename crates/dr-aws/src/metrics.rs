//! [`Metrics`] on CloudWatch custom metrics.

use async_trait::async_trait;
use aws_sdk_cloudwatch::primitives::DateTime as AwsDateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum as AwsDatum, StandardUnit};
use dr_core::*;

use crate::errors::map_sdk_error;

/// PutMetricData takes at most 1,000 datapoints per call.
const BATCH: usize = 1000;

#[derive(Debug, Clone)]
pub struct CloudWatchMetrics {
    client: aws_sdk_cloudwatch::Client,
}

impl CloudWatchMetrics {
    pub fn new(client: aws_sdk_cloudwatch::Client) -> Self {
        CloudWatchMetrics { client }
    }
}

fn to_aws(datum: &MetricDatum) -> DrResult<AwsDatum> {
    if !StandardUnit::values().contains(&datum.unit.as_str()) {
        return Err(DrError::InvalidInput(format!(
            "metric {}: {:?} is not a CloudWatch unit",
            datum.name, datum.unit
        )));
    }
    if !datum.value.is_finite() {
        return Err(DrError::InvalidInput(format!(
            "metric {}: value {} is not a finite number",
            datum.name, datum.value
        )));
    }
    let mut builder = AwsDatum::builder()
        .metric_name(&datum.name)
        .value(datum.value)
        .unit(StandardUnit::from(datum.unit.as_str()))
        .timestamp(AwsDateTime::from_millis(datum.timestamp.timestamp_millis()));
    for (name, value) in &datum.dimensions {
        builder = builder.dimensions(Dimension::builder().name(name).value(value).build());
    }
    Ok(builder.build())
}

#[async_trait]
impl Metrics for CloudWatchMetrics {
    async fn put(&self, namespace: &str, data: &[MetricDatum]) -> DrResult<()> {
        if namespace.is_empty() || namespace.starts_with("AWS/") {
            return Err(DrError::InvalidInput(format!(
                "metric namespace {namespace:?} must be set and must not start with AWS/"
            )));
        }
        let data = data.iter().map(to_aws).collect::<DrResult<Vec<_>>>()?;
        for batch in data.chunks(BATCH) {
            self.client
                .put_metric_data()
                .namespace(namespace)
                .set_metric_data(Some(batch.to_vec()))
                .send()
                .await
                .map_err(|e| map_sdk_error(&format!("putting metrics into {namespace}"), e))?;
        }
        Ok(())
    }

    async fn latest(
        &self,
        namespace: &str,
        metric: &str,
        dimensions: &std::collections::BTreeMap<String, String>,
        since: chrono::DateTime<chrono::Utc>,
    ) -> DrResult<Option<MetricPoint>> {
        use aws_sdk_cloudwatch::types::Statistic;
        let now = chrono::Utc::now();
        let mut request = self
            .client
            .get_metric_statistics()
            .namespace(namespace)
            .metric_name(metric)
            .start_time(AwsDateTime::from_millis(since.timestamp_millis()))
            // A period past now: the current minute is in progress, and a
            // window ending at now drops it (moto does).
            .end_time(AwsDateTime::from_millis(
                (now + chrono::Duration::seconds(60)).timestamp_millis(),
            ))
            .period(60)
            .statistics(Statistic::Minimum)
            .statistics(Statistic::Maximum);
        for (name, value) in dimensions {
            request = request.dimensions(Dimension::builder().name(name).value(value).build());
        }
        let output = request
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("reading {namespace}/{metric}"), e))?;
        // Datapoints come in no particular order.
        Ok(output
            .datapoints()
            .iter()
            .filter_map(|d| {
                Some(MetricPoint {
                    at: crate::rds::to_chrono(d.timestamp()?)?,
                    minimum: d.minimum()?,
                    maximum: d.maximum()?,
                })
            })
            .max_by_key(|p| p.at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn datum(unit: &str, value: f64) -> MetricDatum {
        MetricDatum {
            name: "DatabaseProbeSuccess".to_owned(),
            value,
            unit: unit.to_owned(),
            dimensions: [("Database".to_owned(), "db.muejam.internal".to_owned())].into(),
            timestamp: Utc::now(),
        }
    }

    #[test]
    fn a_datum_keeps_its_unit_value_and_dimensions() {
        let aws = to_aws(&datum("Count", 1.0)).expect("valid");
        assert_eq!(aws.unit(), Some(&StandardUnit::Count));
        assert_eq!(aws.value(), Some(1.0));
        assert_eq!(aws.dimensions()[0].value(), Some("db.muejam.internal"));
    }

    #[test]
    fn unknown_units_and_non_finite_values_are_refused() {
        for bad in [
            datum("Parsecs", 1.0),
            datum("Count", f64::NAN),
            datum("Count", f64::INFINITY),
        ] {
            assert_eq!(to_aws(&bad).expect_err("refused").name(), "InvalidInput");
        }
    }
}
