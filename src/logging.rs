//! Logs and progress go to stderr through tracing, so stdout carries only results.
//!
//! What an operator sees is opsh's own account of what it does; the libraries' logs (sqlx's
//! statements and its "slow statement" warnings with the whole SQL text, tokio, …) are detail
//! for -vv only.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The filter for a verbosity: -q warnings and errors; default: info; -v: debug (connections,
/// each operation's duration, row counts); -vv: trace, and the libraries' own logs at debug.
/// OPSH_LOG (an EnvFilter directive such as `opsh=debug,sqlx=info`) overrides.
pub fn filter(quiet: bool, verbose: u8) -> String {
    match (quiet, verbose) {
        (true, _) => "off,opsh=warn".into(),
        (false, 0) => "off,opsh=info".into(),
        (false, 1) => "off,opsh=debug".into(),
        _ => "debug,opsh=trace".into(),
    }
}

pub fn init(quiet: bool, verbose: u8) {
    let filter = std::env::var("OPSH_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(filter(quiet, verbose)));
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .without_time()
        .with_target(false)
        .try_init();
}
