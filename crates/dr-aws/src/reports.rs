//! [`ReportStore`] on S3: versioned, encrypted at rest.

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use dr_core::*;

use crate::errors::map_sdk_error;

/// Where in the bucket the deployment's reports are.
pub const REPORTS_PREFIX: &str = "reports";

#[derive(Debug, Clone)]
pub struct S3ReportStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl S3ReportStore {
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
    ) -> Self {
        S3ReportStore {
            client,
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }

    fn key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix.trim_end_matches('/'))
        }
    }
}

#[async_trait]
impl ReportStore for S3ReportStore {
    async fn put(&self, key: &str, content_type: &str, body: &[u8]) -> DrResult<String> {
        let key = self.key(key);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type(content_type)
            .server_side_encryption(ServerSideEncryption::Aes256)
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("storing s3://{}/{key}", self.bucket), e))?;
        Ok(format!("s3://{}/{key}", self.bucket))
    }

    async fn get(&self, key: &str) -> DrResult<Option<Vec<u8>>> {
        let key = self.key(key);
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await;
        match result {
            Ok(output) => {
                let bytes = output.body.collect().await.map_err(|e| {
                    DrError::Unavailable(format!("reading s3://{}/{key}: {e}", self.bucket))
                })?;
                Ok(Some(bytes.to_vec()))
            }
            Err(e) => match map_sdk_error(&format!("reading s3://{}/{key}", self.bucket), e) {
                DrError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn list(&self, prefix: &str) -> DrResult<Vec<String>> {
        let full = self.key(prefix);
        let own = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix.trim_end_matches('/'))
        };
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&full)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page
                .map_err(|e| map_sdk_error(&format!("listing s3://{}/{full}", self.bucket), e))?;
            for object in page.contents() {
                if let Some(key) = object.key().and_then(|k| k.strip_prefix(&own)) {
                    keys.push(key.to_owned());
                }
            }
        }
        keys.sort();
        Ok(keys)
    }
}
