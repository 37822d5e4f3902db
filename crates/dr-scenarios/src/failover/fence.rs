//! Fence the old primary before DNS moves; never delete it.

use super::*;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FenceInstanceInput {
    pub instance_id: InstanceId,
    /// Who fences (the execution id), recorded in the `dr:fenced` tag.
    pub by: String,
    /// RDS: the security group that admits nothing.
    #[serde(default)]
    pub quarantine_security_group: Option<String>,
    #[serde(default)]
    pub journal: Option<JournalRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FenceInstanceOutput {
    pub instance_id: InstanceId,
    pub fenced: bool,
    pub already_fenced: bool,
    pub method: String,
    pub mutation: Option<String>,
}

impl Journaled for FenceInstanceOutput {
    fn change(&self) -> Option<String> {
        self.mutation.clone()
    }
}

/// Runbook: make sure the old primary cannot take application writes any
/// more before DNS moves away from it. Never deletes it. Idempotent.
pub async fn fence_instance(
    ports: &Ports,
    input: FenceInstanceInput,
) -> DrResult<FenceInstanceOutput> {
    let what = format!("fencing {}", input.instance_id);
    let journal = input.journal.clone();
    journaled(
        ports,
        journal.as_ref(),
        "fence",
        &what,
        fence_instance_now(ports, input),
    )
    .await
}

pub(crate) async fn fence_instance_now(
    ports: &Ports,
    input: FenceInstanceInput,
) -> DrResult<FenceInstanceOutput> {
    if input.by.trim().is_empty() || input.by.len() > 2048 {
        return Err(DrError::InvalidInput(
            "by must be 1 to 2048 characters (the execution id)".to_owned(),
        ));
    }
    let outcome = match ports
        .control_plane
        .fence_instance(
            &input.instance_id,
            &FenceRequest {
                by: input.by.clone(),
                quarantine_security_group: input
                    .quarantine_security_group
                    .clone()
                    .filter(|g| !g.is_empty()),
            },
        )
        .await
    {
        Ok(outcome) => outcome,
        // Nothing left to fence: it cannot take writes.
        Err(DrError::NotFound(_)) => {
            return Ok(FenceInstanceOutput {
                instance_id: input.instance_id,
                fenced: true,
                already_fenced: true,
                method: "the instance no longer exists".to_owned(),
                mutation: None,
            })
        }
        Err(e) => return Err(e),
    };
    let mutation = (!outcome.already_fenced).then(|| {
        format!(
            "fenced old primary {} ({})",
            input.instance_id, outcome.method
        )
    });
    Ok(FenceInstanceOutput {
        instance_id: input.instance_id,
        fenced: true,
        already_fenced: outcome.already_fenced,
        method: outcome.method,
        mutation,
    })
}
