//! Operation errors a script can inspect: which backend failed, how, and the cause in words.
//!
//! `try { db::ping() } catch (err) { if err.kind == "unreachable" { … } }` — the caught value
//! is an [`OpFailure`]; printed, it is the one-line message the operator sees.

use std::fmt;

use serde::Serialize;

/// A backend: its name and its address with any secret masked.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Backend {
    pub name: &'static str,
    pub address: String,
    /// The setting that gave the address and where its value came from (`postgres.url, from
    /// DATABASE_URL`): a refused or unreachable backend names it, so the operator knows what
    /// to change.
    #[serde(skip)]
    pub setting: String,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.name, self.address)
    }
}

/// How an operation failed; stable names scripts may compare with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No connection: refused, unresolvable, no answer.
    Unreachable,
    /// The backend answered no: authentication, permission.
    Refused,
    /// Bad input: an argument, an option, an unparseable address.
    Invalid,
    /// No answer in time.
    Timeout,
    /// The database lacks a table or column the operation needs (`opsh migrate`).
    MissingSchema,
    /// A named thing does not exist (a collection, a service).
    NotFound,
    /// A destructive operation was not confirmed.
    Declined,
    /// A bulk delete would exceed its deletion budget (src/ops/budget.rs): nothing was deleted.
    OverBudget,
    /// Anything else the backend reported.
    Failed,
}

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Refused => "refused",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Timeout => "timeout",
            ErrorKind::MissingSchema => "missing_schema",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Declined => "declined",
            ErrorKind::OverBudget => "over_budget",
            ErrorKind::Failed => "failed",
        }
    }
}

/// A failed operation: names the backend (with its redacted address) and the cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    pub kind: ErrorKind,
    pub backend: Option<Backend>,
    pub cause: String,
    /// The first connection failed (Lazy::get): the address or its credentials are wrong.
    pub connecting: bool,
}

impl OpError {
    pub fn new(kind: ErrorKind, backend: Option<&Backend>, cause: impl fmt::Display) -> OpError {
        // A driver's message may quote a connection string: mask whatever looks like a secret.
        OpError {
            kind,
            backend: backend.cloned(),
            cause: crate::redact::text(&cause.to_string()),
            connecting: false,
        }
    }

    /// A failure of a backend; its kind read from the cause where nothing more exact is known.
    pub fn backend(backend: &Backend, kind: ErrorKind, cause: impl fmt::Display) -> OpError {
        OpError::new(kind, Some(backend), cause)
    }

    pub fn invalid(cause: impl fmt::Display) -> OpError {
        OpError::new(ErrorKind::Invalid, None, cause)
    }

    pub fn declined(cause: impl fmt::Display) -> OpError {
        OpError::new(ErrorKind::Declined, None, cause)
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Unreachable, or the first connection failed (refused credentials, no answer, not
        // the server expected): the setting that gave the address is what to check. A query's
        // own timeout or a denied function is not about the address.
        let wrong_address = self.connecting || self.kind == ErrorKind::Unreachable;
        match &self.backend {
            Some(b) if wrong_address && !b.setting.is_empty() => {
                write!(f, "{b} ({}): {}", b.setting, self.cause)
            }
            Some(b) => write!(f, "{b}: {}", self.cause),
            None => f.write_str(&self.cause),
        }
    }
}

impl std::error::Error for OpError {}

/// The value a script catches: the function that failed and its error.
#[derive(Debug, Clone)]
pub struct OpFailure {
    pub op: String,
    pub error: OpError,
}

impl fmt::Display for OpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.op, self.error)
    }
}

/// Registers the caught error's type: `err.kind`, `err.backend`, `err.address`, `err.op`,
/// `err.cause`, `err.message`, and its text for print and interpolation.
pub fn register(engine: &mut rhai::Engine) {
    engine
        .register_type_with_name::<OpFailure>("OpError")
        .register_get("kind", |e: &mut OpFailure| e.error.kind.name().to_string())
        .register_get("op", |e: &mut OpFailure| e.op.clone())
        .register_get("cause", |e: &mut OpFailure| e.error.cause.clone())
        .register_get("message", |e: &mut OpFailure| e.to_string())
        .register_get("backend", |e: &mut OpFailure| -> rhai::Dynamic {
            e.error
                .backend
                .as_ref()
                .map(|b| b.name.into())
                .unwrap_or(rhai::Dynamic::UNIT)
        })
        .register_get("address", |e: &mut OpFailure| -> rhai::Dynamic {
            e.error
                .backend
                .as_ref()
                .map(|b| b.address.clone().into())
                .unwrap_or(rhai::Dynamic::UNIT)
        })
        .register_fn("to_string", |e: &mut OpFailure| e.to_string())
        .register_fn("to_debug", |e: &mut OpFailure| e.to_string())
        .register_fn("+", |s: &str, e: OpFailure| format!("{s}{e}"))
        .register_fn("+", |e: OpFailure, s: &str| format!("{e}{s}"));
}
