//! Lambda function `restore-check`: see `dr_scenarios::Function::RestoreCheck`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dr_lambda::serve(dr_scenarios::Function::RestoreCheck).await
}
