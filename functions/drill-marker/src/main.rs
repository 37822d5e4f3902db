//! Lambda function `drill-marker`: see `dr_scenarios::Function::DrillMarker`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dr_lambda::serve(dr_scenarios::Function::DrillMarker).await
}
