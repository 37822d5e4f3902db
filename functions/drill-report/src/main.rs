//! Lambda function `drill-report`: see `dr_scenarios::Function::DrillReport`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dr_lambda::serve(dr_scenarios::Function::DrillReport).await
}
