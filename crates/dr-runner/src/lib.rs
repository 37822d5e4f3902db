//! A local AWS Step Functions runner.
//!
//! Loads `statemachines/*.asl.json` (Amazon States Language, JSONPath query
//! language) strictly, resolves `${Name}` substitutions as SAM's
//! DefinitionSubstitutions would, and executes Task states by calling
//! in-process handlers registered by Lambda function name: the same handler
//! code that runs inside the deployed Lambda; `states:startExecution.sync`
//! tasks run child executions of other loaded state machines.

pub mod budget;
pub mod choice;
pub mod control;
pub mod definition;
pub mod engine;
pub mod error;
pub mod handler;
pub mod history;
pub mod intrinsics;
pub mod path;
pub mod sam;
pub mod template;

pub use control::{Fault, FaultPlan, FaultRule, TaskTokens, TokenOutcome};
pub use definition::{LoadOptions, StateMachine};
pub use engine::{
    ChildRecord, ExecutionResult, ExecutionStatus, Observer, Runner, TimeMode, TokenDelay,
};
pub use error::{LoadError, StateError};
pub use handler::{HandlerError, Handlers, InvocationContext, TaskHandler};
pub use history::HistoryEvent;
