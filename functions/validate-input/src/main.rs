//! Lambda function `validate-input`: see `dr_scenarios::Function::ValidateInput`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dr_lambda::serve(dr_scenarios::Function::ValidateInput).await
}
