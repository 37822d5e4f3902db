//! Lambda function `start-restore`: see `dr_scenarios::Function::StartRestore`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dr_lambda::serve(dr_scenarios::Function::StartRestore).await
}
