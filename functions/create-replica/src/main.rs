//! Lambda function `create-replica`: see `dr_scenarios::Function::CreateReplica`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dr_lambda::serve(dr_scenarios::Function::CreateReplica).await
}
