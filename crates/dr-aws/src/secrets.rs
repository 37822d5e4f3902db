//! [`Secrets`] on Secrets Manager.

use async_trait::async_trait;
use dr_core::*;
use secrecy::{ExposeSecret, SecretString};

use crate::errors::map_sdk_error;

#[derive(Debug, Clone)]
pub struct SecretsManagerSecrets {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManagerSecrets {
    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        SecretsManagerSecrets { client }
    }
}

#[async_trait]
impl Secrets for SecretsManagerSecrets {
    async fn get_secret(&self, secret_id: &str) -> DrResult<SecretString> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("reading secret {secret_id}"), e))?;
        output
            .secret_string()
            .map(|s| SecretString::from(s.to_owned()))
            .ok_or_else(|| DrError::InvalidInput(format!("secret {secret_id} has no string value")))
    }

    async fn put_secret(&self, secret_id: &str, value: &SecretString) -> DrResult<String> {
        let output = self
            .client
            .put_secret_value()
            .secret_id(secret_id)
            .secret_string(value.expose_secret())
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("storing secret {secret_id}"), e))?;
        Ok(output.version_id().unwrap_or_default().to_owned())
    }
}
