//! Lambda function `update-dns`: see `dr_scenarios::Function::UpdateDns`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dr_lambda::serve(dr_scenarios::Function::UpdateDns).await
}
