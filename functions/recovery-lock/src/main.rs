//! Lambda function `recovery-lock`: see `dr_scenarios::Function::RecoveryLock`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dr_lambda::serve(dr_scenarios::Function::RecoveryLock).await
}
