//! AWS error codes mapped to the project's stable error names.

use aws_sdk_rds::error::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use dr_core::DrError;

const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "PriorRequestNotComplete",
    "ProvisionedThroughputExceededException",
    "RequestThrottled",
    "SlowDown",
];
const NOT_FOUND: &[&str] = &[
    "DBInstanceNotFound",
    "DBInstanceNotFoundFault",
    "DBSnapshotNotFound",
    "DBSnapshotNotFoundFault",
    "NoSuchHostedZone",
    "NoSuchChange",
    "NotFound",
    "NotFoundException",
    "ResourceNotFoundException",
    "NoSuchKey",
    "NoSuchBucket",
    "ExecutionDoesNotExist",
    "StateMachineDoesNotExist",
    // IAM's: a role or policy that is not there.
    "NoSuchEntity",
    "TaskDoesNotExist",
    // Step Functions' SendTask*: the token's task no longer waits (its wait
    // ended, or its execution did).
    "TaskTimedOut",
    "WAFNonexistentItemException",
];
const ALREADY_EXISTS: &[&str] = &[
    "DBInstanceAlreadyExists",
    "DBInstanceAlreadyExistsFault",
    "DBSnapshotAlreadyExists",
    "DBSnapshotAlreadyExistsFault",
    "ResourceExistsException",
    "BucketAlreadyOwnedByYou",
];
const NOT_READY: &[&str] = &[
    "InvalidDBInstanceState",
    "InvalidDBInstanceStateFault",
    "InvalidDBSnapshotState",
    "InvalidDBSnapshotStateFault",
    "InvalidRequestException",
    "WAFUnavailableEntityException",
];
const INVALID: &[&str] = &[
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "InvalidParameterException",
    "InvalidInput",
    "InvalidChangeBatch",
    "ValidationException",
    "ValidationError",
    // The key a copy names is missing, disabled or not ours to use: a
    // configuration mistake no retry fixes.
    "KMSKeyNotAccessibleFault",
    "KMSKeyNotAccessible",
    "WAFInvalidParameterException",
    "WAFLimitsExceededException",
];

/// Maps an SDK error of any service to a stable name, keeping AWS's code and
/// message for the person reading it.
pub fn map_sdk_error<E, R>(context: &str, error: SdkError<E, R>) -> DrError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = error.code().map(str::to_owned);
    let detail = match (&code, error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.clone(),
        _ => DisplayErrorContext(&error).to_string(),
    };
    let message = format!("{context}: {detail}");
    let is_dispatch = matches!(
        error,
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_)
    );
    if is_dispatch {
        return DrError::Unavailable(message);
    }
    match code.as_deref() {
        Some(c) if THROTTLING.contains(&c) => DrError::Throttled(message),
        Some(c) if NOT_FOUND.contains(&c) => DrError::NotFound(message),
        Some(c) if ALREADY_EXISTS.contains(&c) => DrError::AlreadyExists(message),
        Some(c) if NOT_READY.contains(&c) => DrError::NotReady(message),
        Some(c) if INVALID.contains(&c) => DrError::InvalidInput(message),
        // A write whose precondition another writer broke: re-read, retry.
        Some("ConditionalCheckFailedException" | "WAFOptimisticLockException") => {
            DrError::Conflict(message)
        }
        Some(c)
            if c.ends_with("ServiceUnavailable")
                || c == "InternalFailure"
                || c == "WAFInternalErrorException" =>
        {
            DrError::Unavailable(message)
        }
        _ => DrError::Internal(message),
    }
}
