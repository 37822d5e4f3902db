//! Lambda function `notify`: see `dr_scenarios::Function::Notify`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dr_lambda::serve(dr_scenarios::Function::Notify).await
}
