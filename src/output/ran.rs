//! One procedure's run on one target, as the formats render it: what ran, where, when, how long,
//! and how it ended.

use rhai::Dynamic;

use crate::error::Error;
use crate::host::Outcome;
use crate::report::{Marks, Report, Status};

pub struct Ran {
    /// The procedure's name (as the catalog knows it, or as given when it was never found).
    pub procedure: String,
    /// The target's name, or None for the configuration's top level.
    pub target: Option<String>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub seconds: f64,
    pub result: Result<Outcome, Error>,
}

impl Ran {
    /// The target as text and metric labels name it: its name, or `default`.
    pub fn label(&self) -> &str {
        self.target.as_deref().unwrap_or("default")
    }

    /// The status this run counts as: its report's, its exit's; a failed run is critical (the
    /// target is down, or the procedure broke on it), one that was refused (already running,
    /// not confirmed, a usage error) unknown.
    pub fn status(&self) -> Status {
        match &self.result {
            Ok(outcome) => outcome_status(outcome),
            Err(Error::Locked { .. } | Error::Refused { .. } | Error::Usage { .. })
            | Err(Error::Output { .. })
            | Err(Error::Config { .. } | Error::UnknownProcedure { .. }) => Status::Unknown,
            Err(_) => Status::Critical,
        }
    }

    /// The exit code of this run alone: a script's `exit(n)`, a report's status, an error's code.
    pub fn exit_code(&self) -> u8 {
        match &self.result {
            Ok(Outcome::Exit(v)) if v.is_int() => {
                u8::try_from(v.as_int().unwrap_or(3)).unwrap_or(crate::error::code::UNKNOWN)
            }
            Ok(outcome) => outcome_status(outcome).exit_code(),
            Err(e) => e.exit_code(),
        }
    }

    pub fn report(&self) -> Option<Report> {
        self.result.as_ref().ok().and_then(outcome_report)
    }
}

pub fn outcome_value(outcome: &Outcome) -> &Dynamic {
    match outcome {
        Outcome::Value(v) | Outcome::Exit(v) => v,
    }
}

pub fn outcome_report(outcome: &Outcome) -> Option<Report> {
    outcome_value(outcome).clone().try_cast::<Report>()
}

pub fn outcome_status(outcome: &Outcome) -> Status {
    if let Some(report) = outcome_report(outcome) {
        return report.status();
    }
    match outcome {
        Outcome::Exit(v) if v.is_int() => match v.as_int().unwrap_or(3) {
            0 => Status::Ok,
            1 => Status::Warning,
            2 => Status::Critical,
            _ => Status::Unknown,
        },
        _ => Status::Ok,
    }
}

/// An outcome as text: the report, the value; nothing for `exit(n)` or a unit.
pub fn text_of(outcome: &Outcome, marks: Marks) -> String {
    if let Some(report) = outcome_report(outcome) {
        return report.to_text(marks);
    }
    let value = outcome_value(outcome);
    if value.is_unit() || (matches!(outcome, Outcome::Exit(_)) && value.is_int()) {
        String::new()
    } else {
        format!("{}\n", super::display(value))
    }
}

/// An outcome as JSON: the report, the value; null for `exit(n)` (its code is the envelope's).
pub fn json_of(outcome: &Outcome) -> serde_json::Value {
    if let Some(report) = outcome_report(outcome) {
        return report.to_json();
    }
    match outcome {
        Outcome::Exit(v) if v.is_int() => serde_json::Value::Null,
        _ => serde_json::to_value(outcome_value(outcome)).unwrap_or(serde_json::Value::Null),
    }
}

/// An error's message on one line, without styles.
pub fn error_text(e: &Error) -> String {
    let text = anstream::adapter::strip_str(&e.to_string()).to_string();
    crate::redact::text(text.trim_end())
}
