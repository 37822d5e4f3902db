//! [`Firewall`] on AWS WAF (v2) IP sets.
//!
//! WAF replaces an IP set's addresses as a whole, guarded by the lock token
//! of the read: a stale token (someone changed the set since) is
//! `WAFOptimisticLockException`, mapped to `Conflict` so that the caller
//! re-reads and merges again. A `CLOUDFRONT` set is managed through
//! us-east-1 only (AWS's rule): give this adapter a client of that region.

use async_trait::async_trait;
use aws_sdk_wafv2::types::Scope;
use dr_core::*;

use crate::errors::map_sdk_error;

#[derive(Debug, Clone)]
pub struct WafFirewall {
    client: aws_sdk_wafv2::Client,
}

impl WafFirewall {
    pub fn new(client: aws_sdk_wafv2::Client) -> Self {
        WafFirewall { client }
    }
}

fn scope(ip_set: &IpSetRef) -> DrResult<Scope> {
    match ip_set.scope.as_str() {
        "REGIONAL" => Ok(Scope::Regional),
        "CLOUDFRONT" => Ok(Scope::Cloudfront),
        other => Err(DrError::InvalidInput(format!(
            "IP set {} has scope {other:?}: REGIONAL or CLOUDFRONT",
            ip_set.name
        ))),
    }
}

#[async_trait]
impl Firewall for WafFirewall {
    async fn get_ip_set(&self, ip_set: &IpSetRef) -> DrResult<IpSetContents> {
        let context = format!("reading WAF IP set {}", ip_set.name);
        let output = self
            .client
            .get_ip_set()
            .name(&ip_set.name)
            .id(&ip_set.id)
            .scope(scope(ip_set)?)
            .send()
            .await
            .map_err(|e| map_sdk_error(&context, e))?;
        let set = output
            .ip_set()
            .ok_or_else(|| DrError::Internal(format!("{context}: no IP set in the answer")))?;
        let lock_token = output
            .lock_token()
            .ok_or_else(|| DrError::Internal(format!("{context}: no lock token in the answer")))?;
        Ok(IpSetContents {
            addresses: set.addresses().to_vec(),
            lock_token: lock_token.to_owned(),
            ip_version: Some(set.ip_address_version().as_str().to_owned()),
        })
    }

    async fn update_ip_set(
        &self,
        ip_set: &IpSetRef,
        addresses: &[String],
        lock_token: &str,
    ) -> DrResult<()> {
        let context = format!("updating WAF IP set {}", ip_set.name);
        self.client
            .update_ip_set()
            .name(&ip_set.name)
            .id(&ip_set.id)
            .scope(scope(ip_set)?)
            .set_addresses(Some(addresses.to_vec()))
            .lock_token(lock_token)
            .send()
            .await
            .map_err(|e| map_sdk_error(&context, e))?;
        Ok(())
    }
}
