//! Lambda function `drill-scope`: see `dr_scenarios::Function::DrillScope`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dr_lambda::serve(dr_scenarios::Function::DrillScope).await
}
