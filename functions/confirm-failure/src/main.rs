//! Lambda function `confirm-failure`: see `dr_scenarios::Function::ConfirmFailure`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dr_lambda::serve(dr_scenarios::Function::ConfirmFailure).await
}
