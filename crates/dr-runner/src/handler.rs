//! Task handlers: the in-process stand-ins for Lambda functions, registered
//! by function name. The same handler code runs inside the real Lambda.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use dr_core::DrError;
use serde_json::Value;

/// What a handler is told about its invocation.
#[derive(Debug, Clone)]
pub struct InvocationContext {
    pub function_name: String,
    pub state_name: String,
    pub execution_arn: String,
    pub request_id: String,
    /// Present for `.waitForTaskToken` tasks when the payload did not carry it.
    pub task_token: Option<String>,
}

/// A function failure as Lambda reports it: `errorType` + `errorMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError {
    pub error_type: String,
    pub error_message: String,
}

impl HandlerError {
    pub fn new(error_type: impl Into<String>, error_message: impl Into<String>) -> Self {
        HandlerError {
            error_type: error_type.into(),
            error_message: error_message.into(),
        }
    }
}

impl From<DrError> for HandlerError {
    fn from(error: DrError) -> Self {
        HandlerError::new(error.name(), error.to_string())
    }
}

#[async_trait]
pub trait TaskHandler: Send + Sync {
    async fn invoke(
        &self,
        payload: Value,
        context: InvocationContext,
    ) -> Result<Value, HandlerError>;
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Value, HandlerError>> + Send>>;

struct FnHandler<F>(F);

#[async_trait]
impl<F> TaskHandler for FnHandler<F>
where
    F: Fn(Value, InvocationContext) -> BoxFuture + Send + Sync,
{
    async fn invoke(
        &self,
        payload: Value,
        context: InvocationContext,
    ) -> Result<Value, HandlerError> {
        (self.0)(payload, context).await
    }
}

/// Handlers by function name.
#[derive(Clone, Default)]
pub struct Handlers {
    map: BTreeMap<String, Arc<dyn TaskHandler>>,
}

impl Handlers {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(
        &mut self,
        function: impl Into<String>,
        handler: Arc<dyn TaskHandler>,
    ) -> &mut Self {
        self.map.insert(function.into(), handler);
        self
    }

    /// Registers an async closure.
    pub fn register_fn<F, Fut>(&mut self, function: impl Into<String>, f: F) -> &mut Self
    where
        F: Fn(Value, InvocationContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, HandlerError>> + Send + 'static,
    {
        let boxed = move |payload: Value, context: InvocationContext| -> BoxFuture {
            Box::pin(f(payload, context))
        };
        self.register(function, Arc::new(FnHandler(boxed)))
    }

    pub fn get(&self, function: &str) -> Option<Arc<dyn TaskHandler>> {
        self.map.get(function).cloned()
    }

    pub fn names(&self) -> std::collections::BTreeSet<String> {
        self.map.keys().cloned().collect()
    }
}
