//! Lambda function `fence-instance`: see `dr_scenarios::Function::FenceInstance`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dr_lambda::serve(dr_scenarios::Function::FenceInstance).await
}
