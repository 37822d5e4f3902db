//! Lambda function `runbook-review`: see `dr_scenarios::Function::RunbookReview`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dr_lambda::serve(dr_scenarios::Function::RunbookReview).await
}
