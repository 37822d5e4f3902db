//! Lambda function `verify-backup`: see `dr_scenarios::Function::VerifyBackup`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dr_lambda::serve(dr_scenarios::Function::VerifyBackup).await
}
