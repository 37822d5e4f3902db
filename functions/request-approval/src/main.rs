//! Lambda function `request-approval`: see `dr_scenarios::Function::RequestApproval`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dr_lambda::serve(dr_scenarios::Function::RequestApproval).await
}
