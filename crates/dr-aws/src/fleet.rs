//! [`AppFleet`] on EC2 Auto Scaling: the application servers' group, in
//! the region the fleet reference names.
//!
//! The healthy count is the load balancer's when the reference names a
//! target group (DescribeTargetHealth: only `healthy` counts; `initial`,
//! `draining`, `unused` and `unavailable` do not), the group's own otherwise
//! (InService and Healthy).

use async_trait::async_trait;
use aws_sdk_autoscaling::types::AutoScalingGroup;
use dr_core::*;

use crate::errors::map_sdk_error;
use crate::rds::to_chrono;

#[derive(Debug, Clone)]
pub struct AutoScalingFleet {
    client: aws_sdk_autoscaling::Client,
    elbv2: aws_sdk_elasticloadbalancingv2::Client,
}

impl AutoScalingFleet {
    pub fn new(
        client: aws_sdk_autoscaling::Client,
        elbv2: aws_sdk_elasticloadbalancingv2::Client,
    ) -> Self {
        AutoScalingFleet { client, elbv2 }
    }

    /// (healthy, not healthy) targets of a target group, in the fleet's region.
    async fn target_health(&self, fleet: &FleetRef, arn: &str) -> DrResult<(u32, u32)> {
        let client = match &fleet.region {
            None => self.elbv2.clone(),
            Some(region) => {
                validate_region(region)?;
                aws_sdk_elasticloadbalancingv2::Client::from_conf(
                    self.elbv2
                        .config()
                        .to_builder()
                        .region(aws_sdk_elasticloadbalancingv2::config::Region::new(
                            region.clone(),
                        ))
                        .build(),
                )
            }
        };
        let out = client
            .describe_target_health()
            .target_group_arn(arn)
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("reading the health of {arn}"), e))?;
        let healthy = out
            .target_health_descriptions()
            .iter()
            .filter(|d| {
                d.target_health()
                    .and_then(|h| h.state())
                    .is_some_and(|s| s.as_str() == "healthy")
            })
            .count() as u32;
        Ok((
            healthy,
            out.target_health_descriptions().len() as u32 - healthy,
        ))
    }

    /// The client for the fleet's region (the home client when it names none).
    fn client_for(&self, fleet: &FleetRef) -> DrResult<aws_sdk_autoscaling::Client> {
        match &fleet.region {
            None => Ok(self.client.clone()),
            Some(region) => {
                validate_region(region)?;
                Ok(aws_sdk_autoscaling::Client::from_conf(
                    self.client
                        .config()
                        .to_builder()
                        .region(aws_sdk_autoscaling::config::Region::new(region.clone()))
                        .build(),
                ))
            }
        }
    }

    async fn group(&self, fleet: &FleetRef) -> DrResult<AutoScalingGroup> {
        let output = self
            .client_for(fleet)?
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(&fleet.auto_scaling_group)
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("describing {}", fleet.auto_scaling_group), e))?;
        output
            .auto_scaling_groups()
            .first()
            .cloned()
            .ok_or_else(|| {
                DrError::NotFound(format!(
                    "Auto Scaling group {} not found",
                    fleet.auto_scaling_group
                ))
            })
    }
}

fn count(n: Option<i32>) -> u32 {
    n.unwrap_or(0).max(0) as u32
}

fn refresh_of(r: &aws_sdk_autoscaling::types::InstanceRefresh) -> InstanceRefresh {
    InstanceRefresh {
        refresh_id: r.instance_refresh_id().unwrap_or_default().to_owned(),
        status: r
            .status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        percentage_complete: r.percentage_complete().map(|p| p.max(0) as u32),
        started_at: r.start_time().and_then(to_chrono),
    }
}

#[async_trait]
impl AppFleet for AutoScalingFleet {
    async fn describe_fleet(&self, fleet: &FleetRef) -> DrResult<FleetStatus> {
        let group = self.group(fleet).await?;
        let instances: Vec<FleetInstance> = group
            .instances()
            .iter()
            .map(|i| FleetInstance {
                instance_id: i.instance_id().unwrap_or_default().to_owned(),
                lifecycle_state: i
                    .lifecycle_state()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                health_status: i.health_status().unwrap_or_default().to_owned(),
            })
            .collect();
        let healthy = instances
            .iter()
            .filter(|i| i.lifecycle_state == "InService" && i.health_status == "Healthy")
            .count() as u32;
        let (healthy_targets, unhealthy_targets) = match &fleet.target_group_arn {
            Some(arn) => self.target_health(fleet, arn).await?,
            None => (healthy, instances.len() as u32 - healthy),
        };
        Ok(FleetStatus {
            desired_capacity: count(group.desired_capacity()),
            min_size: count(group.min_size()),
            max_size: count(group.max_size()),
            unhealthy_targets,
            healthy_targets,
            instances,
        })
    }

    /// Sets the desired capacity; a capacity beyond the group's maximum is
    /// refused (raising the maximum is a decision for people, not for a
    /// recovery).
    async fn set_desired_capacity(&self, fleet: &FleetRef, desired: u32) -> DrResult<()> {
        let group = self.group(fleet).await?;
        let max = count(group.max_size());
        if desired > max {
            return Err(DrError::InvalidInput(format!(
                "{} may hold at most {max} instances; {desired} were asked for: raise its MaxSize first",
                fleet.auto_scaling_group
            )));
        }
        let desired = i32::try_from(desired)
            .map_err(|_| DrError::InvalidInput(format!("{desired} instances is too many")))?;
        self.client_for(fleet)?
            .set_desired_capacity()
            .auto_scaling_group_name(&fleet.auto_scaling_group)
            .desired_capacity(desired)
            .honor_cooldown(false)
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("scaling {}", fleet.auto_scaling_group), e))?;
        Ok(())
    }

    async fn start_instance_refresh(&self, fleet: &FleetRef) -> DrResult<InstanceRefresh> {
        let client = self.client_for(fleet)?;
        // Launch before terminate: no server is taken out before its
        // replacement passes (MinHealthyPercentage 100, MaxHealthyPercentage
        // 200, the widest range AWS allows). The default (90 %, or the
        // group's maintenance policy) may terminate healthy servers of a
        // fleet that is already short.
        let preferences = aws_sdk_autoscaling::types::RefreshPreferences::builder()
            .min_healthy_percentage(100)
            .max_healthy_percentage(200)
            .build();
        match client
            .start_instance_refresh()
            .auto_scaling_group_name(&fleet.auto_scaling_group)
            .preferences(preferences)
            .send()
            .await
        {
            Ok(out) => Ok(InstanceRefresh {
                refresh_id: out.instance_refresh_id().unwrap_or_default().to_owned(),
                status: "Pending".to_owned(),
                percentage_complete: Some(0),
                started_at: None,
            }),
            // One is running already: join it.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_instance_refresh_in_progress_fault()) =>
            {
                let out = client
                    .describe_instance_refreshes()
                    .auto_scaling_group_name(&fleet.auto_scaling_group)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("describing instance refreshes", e))?;
                out.instance_refreshes()
                    .iter()
                    .find(|r| {
                        r.status().is_some_and(|s| {
                            matches!(s.as_str(), "Pending" | "InProgress" | "Cancelling")
                        })
                    })
                    .map(refresh_of)
                    .ok_or_else(|| DrError::NotReady("an instance refresh is in progress".into()))
            }
            Err(e) => Err(map_sdk_error(
                &format!("refreshing {}", fleet.auto_scaling_group),
                e,
            )),
        }
    }

    async fn describe_instance_refresh(
        &self,
        fleet: &FleetRef,
        refresh_id: &str,
    ) -> DrResult<InstanceRefresh> {
        let out = self
            .client_for(fleet)?
            .describe_instance_refreshes()
            .auto_scaling_group_name(&fleet.auto_scaling_group)
            .instance_refresh_ids(refresh_id)
            .send()
            .await
            .map_err(|e| map_sdk_error("describing instance refreshes", e))?;
        out.instance_refreshes()
            .first()
            .map(refresh_of)
            .ok_or_else(|| DrError::NotFound(format!("instance refresh {refresh_id} not found")))
    }
}
