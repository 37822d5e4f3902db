//! Lambda function `drill-promote`: see `dr_scenarios::Function::DrillPromote`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dr_lambda::serve(dr_scenarios::Function::DrillPromote).await
}
