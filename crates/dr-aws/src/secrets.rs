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
        // By stage, always: after a stage move moto can answer a plain read
        // with the old value (AWS-FIDELITY.md); AWS means the same by both.
        let output = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .version_stage("AWSCURRENT")
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

    async fn get_secret_stage(
        &self,
        secret_id: &str,
        stage: &str,
    ) -> DrResult<Option<SecretVersion>> {
        let context = format!("reading secret {secret_id} at {stage}");
        let output = match self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .version_stage(stage)
            .send()
            .await
            .map_err(|e| map_sdk_error(&context, e))
        {
            Ok(output) => output,
            // No version has that stage (the secret itself must exist).
            Err(DrError::NotFound(_)) if stage != "AWSCURRENT" => return Ok(None),
            Err(e) => return Err(e),
        };
        let value = output.secret_string().ok_or_else(|| {
            DrError::InvalidInput(format!("secret {secret_id} has no string value"))
        })?;
        Ok(Some(SecretVersion {
            version_id: output.version_id().unwrap_or_default().to_owned(),
            value: SecretString::from(value.to_owned()),
            stages: output.version_stages().to_vec(),
        }))
    }

    async fn put_secret_pending(
        &self,
        secret_id: &str,
        token: &str,
        value: &SecretString,
    ) -> DrResult<String> {
        let output = self
            .client
            .put_secret_value()
            .secret_id(secret_id)
            .client_request_token(token)
            .secret_string(value.expose_secret())
            .version_stages("AWSPENDING")
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("storing a pending version of {secret_id}"), e))?;
        Ok(output.version_id().unwrap_or(token).to_owned())
    }

    async fn move_secret_stage(
        &self,
        secret_id: &str,
        stage: &str,
        version_id: &str,
        from: Option<&str>,
    ) -> DrResult<()> {
        self.client
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(stage)
            .move_to_version_id(version_id)
            .set_remove_from_version_id(from.map(str::to_owned))
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("moving {stage} of {secret_id}"), e))?;
        Ok(())
    }

    async fn remove_secret_stage(
        &self,
        secret_id: &str,
        stage: &str,
        version_id: &str,
    ) -> DrResult<()> {
        self.client
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(stage)
            .remove_from_version_id(version_id)
            .send()
            .await
            .map_err(|e| map_sdk_error(&format!("removing {stage} from {secret_id}"), e))?;
        Ok(())
    }
}
