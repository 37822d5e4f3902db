//! Lambda function `report`: see `dr_scenarios::Function::Report`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dr_lambda::serve(dr_scenarios::Function::Report).await
}
