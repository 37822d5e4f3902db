//! Lambda function `drill-cleanup`: see `dr_scenarios::Function::DrillCleanup`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dr_lambda::serve(dr_scenarios::Function::DrillCleanup).await
}
