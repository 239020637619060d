//! `--json` for a procedure: one envelope per target run, saying what ran, where, when, for how
//! long, how it ended, and the report (or the error) inside.
//!
//! ```json
//! {"procedure": "check-jobs", "target": null, "opsh_version": "0.3.0",
//!  "started_at": "2026-12-02T02:00:01.123Z", "duration_seconds": 0.41,
//!  "exit_code": 1, "status": "warning", "report": {"title": "Job queue", …}}
//! ```
//!
//! `target` is the named target, or null for the configuration's top level. A run that failed
//! has `"report": null` and `"error": {"kind", "message"}`. With `--target a,b` the document is a
//! JSON array of envelopes, one per target in the order given (a list keeps that order, and every
//! element has the same shape as a single run's document).

use serde_json::{Value, json};

use super::ran::{Ran, error_text, json_of};
use crate::report::Status;

/// A run's envelope. Alone, its exit code is the process's (an error: 3, or 130 interrupted)
/// and its status that code's word; among several targets, a target that failed counts as
/// critical (see [`Ran::status`]), as the combined exit code does.
pub fn envelope(run: &Ran, several: bool) -> Value {
    let (exit_code, status) = if several {
        (run.status().exit_code(), run.status())
    } else {
        (run.exit_code(), Status::of_code(run.exit_code()))
    };
    let mut doc = json!({
        "procedure": run.procedure,
        "target": run.target,
        "opsh_version": env!("CARGO_PKG_VERSION"),
        "started_at": run.started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "duration_seconds": (run.seconds * 1000.0).round() / 1000.0,
        "exit_code": exit_code,
        "status": status,
        "report": Value::Null,
    });
    match &run.result {
        Ok(outcome) => doc["report"] = json_of(outcome),
        Err(e) => doc["error"] = json!({ "kind": e.kind(), "message": error_text(e) }),
    }
    doc
}

/// The document: one envelope, or with several targets an array of them.
pub fn document(runs: &[Ran], several: bool) -> Value {
    match runs {
        [one] if !several => envelope(one, false),
        runs => Value::Array(runs.iter().map(|r| envelope(r, true)).collect()),
    }
}
