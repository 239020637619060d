//! Logs and progress go to stderr through tracing, so stdout carries only results.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// -q: warnings and errors; default: info; -v: debug; -vv: trace. OPSH_LOG overrides.
pub fn init(quiet: bool, verbose: u8) {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = std::env::var("OPSH_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        // sqlx logs every statement at info; they are noise for an operator.
        .unwrap_or_else(|| EnvFilter::new(format!("{level},sqlx=warn")));
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .without_time()
        .with_target(false)
        .try_init();
}
