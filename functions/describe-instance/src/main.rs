//! Lambda function `describe-instance`: see `dr_scenarios::Function::DescribeInstance`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dr_lambda::serve(dr_scenarios::Function::DescribeInstance).await
}
