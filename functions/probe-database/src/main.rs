//! Lambda function `probe-database`: see `dr_scenarios::Function::ProbeDatabase`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dr_lambda::serve(dr_scenarios::Function::ProbeDatabase).await
}
