//! The Lambda `bootstrap` of every function in template.yaml. Each function
//! keeps its own resource, role, timeout, memory, log group and sample event;
//! the template sets `DR_FUNCTION` to the step it serves (README.md here lists
//! them, `dr_scenarios::Function` holds their handlers and port calls).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    dr_lambda::serve_configured().await
}
