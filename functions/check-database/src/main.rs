//! Lambda function `check-database`: see `dr_scenarios::Function::CheckDatabase`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dr_lambda::serve(dr_scenarios::Function::CheckDatabase).await
}
