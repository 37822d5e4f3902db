//! Lambda function `update-topology`: see `dr_scenarios::Function::UpdateTopology`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dr_lambda::serve(dr_scenarios::Function::UpdateTopology).await
}
