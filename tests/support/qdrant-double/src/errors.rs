//! Qdrant's error texts and codes for what the double can refuse.
//!
//! Qdrant's storage errors display as "Not found: …", "Wrong input: …" and so on, and its gRPC
//! layer maps them to codes (NotFound, InvalidArgument, AlreadyExists, …); its REST layer to
//! 404, 400, 409 with a body `{"status":{"error":"…"},"time":…}`.

use tonic::Status;

/// A collection that does not exist.
pub fn collection_not_found(name: &str) -> Status {
    Status::not_found(format!("Not found: Collection `{name}` doesn't exist!"))
}

/// A collection created twice.
pub fn collection_exists(name: &str) -> Status {
    Status::already_exists(format!("Wrong input: Collection `{name}` already exists!"))
}

/// Qdrant's BadInput.
pub fn wrong_input(description: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("Wrong input: {description}"))
}

/// A snapshot file that does not exist.
pub fn snapshot_not_found(name: &str) -> Status {
    Status::not_found(format!("Not found: Snapshot {name} not found"))
}

/// Qdrant's ServiceError.
pub fn internal(description: impl std::fmt::Display) -> Status {
    Status::internal(format!("Service internal error: {description}"))
}

/// What real Qdrant implements but opsh never calls.
pub fn unimplemented(what: &str) -> Status {
    Status::unimplemented(format!(
        "qdrant-double (a test double of Qdrant, not Qdrant) does not implement {what}: opsh does not use it"
    ))
}

/// Qdrant's answer to a request without an API key when one is configured.
pub const NO_API_KEY: &str = "Must provide an API key or an Authorization bearer token";
/// Qdrant's answer to a wrong API key.
pub const WRONG_API_KEY: &str = "Invalid API key or JWT";

/// Checks the `api-key` header (or `authorization: Bearer …`) the way Qdrant does.
pub fn check_api_key(
    expected: &str,
    api_key: Option<&str>,
    authorization: Option<&str>,
) -> Result<(), &'static str> {
    let given = api_key.or_else(|| authorization.and_then(|v| v.strip_prefix("Bearer ")));
    match given {
        None => Err(NO_API_KEY),
        Some(key) if constant_time_eq(key.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(WRONG_API_KEY),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
