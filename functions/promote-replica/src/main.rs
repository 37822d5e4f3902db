//! Lambda function `promote-replica`: see `dr_scenarios::Function::PromoteReplica`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dr_lambda::serve(dr_scenarios::Function::PromoteReplica).await
}
