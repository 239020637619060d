//! The errors a user can see, each with its exit code. Printed once, at the top (cli::main).

use std::time::Duration;

/// Exit codes: the Nagios plugin convention.
pub mod code {
    pub const OK: u8 = 0;
    pub const WARNING: u8 = 1;
    pub const CRITICAL: u8 = 2;
    pub const UNKNOWN: u8 = 3;
    /// Ended by Ctrl-C, as shells report a SIGINT death.
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{message}")]
    Usage { message: String },

    #[error("{message}")]
    Config { message: String },

    #[error("unknown procedure `{name}`{}", hint(suggestions))]
    UnknownProcedure {
        name: String,
        suggestions: Vec<String>,
    },

    #[error("refusing site script {path}: {why}; run `{fix}` to fix it")]
    UnsafeScript {
        path: String,
        why: String,
        fix: String,
    },

    #[error("cannot read script {path}: {cause}")]
    ScriptFile { path: String, cause: String },

    /// A parse or runtime error, already rendered with file:line:column and the source line.
    #[error("{rendered}")]
    Script { rendered: String },

    /// A destructive operation that was not confirmed.
    #[error("refused: {message}")]
    Refused { message: String },

    /// Another run of a data-changing procedure holds its run lock.
    #[error("{message}")]
    Locked { message: String },

    #[error("interrupted")]
    Interrupted,

    /// Stdout took no more output (`| head -1`); the run was stopped and its guards cleaned
    /// up. Exits with the status output::failed decided (141 for a closed pipe), quietly.
    #[error("stdout can take no more output")]
    Output { status: u8 },

    #[error("timed out after {} (run.timeout, --timeout)", crate::duration::format(*.0))]
    TimedOut(Duration),

    #[error("{0}")]
    Io(String),
}

fn hint(suggestions: &[String]) -> String {
    match suggestions {
        [] => "; `opsh scripts` lists the procedures".to_string(),
        names => format!(
            "; did you mean {}?",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(" or ")
        ),
    }
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Interrupted => code::INTERRUPTED,
            Error::Output { status } => *status,
            _ => code::UNKNOWN,
        }
    }

    /// A short machine-readable name for --json output.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Usage { .. } => "usage",
            Error::Config { .. } => "config",
            Error::UnknownProcedure { .. } => "unknown_procedure",
            Error::UnsafeScript { .. } => "unsafe_script",
            Error::ScriptFile { .. } => "script_file",
            Error::Script { .. } => "script",
            Error::Refused { .. } => "refused",
            Error::Locked { .. } => "locked",
            Error::Interrupted => "interrupted",
            Error::Output { .. } => "output",
            Error::TimedOut(_) => "timeout",
            Error::Io(_) => "io",
        }
    }
}
