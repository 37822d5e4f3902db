//! Lambda function `drill-replica`: see `dr_scenarios::Function::DrillReplica`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dr_lambda::serve(dr_scenarios::Function::DrillReplica).await
}
