//! Logs and progress go to stderr through tracing, so stdout carries only results.
//!
//! What an operator sees is opsh's own account of what it does; the libraries' logs (sqlx's
//! statements and its "slow statement" warnings with the whole SQL text, tokio, …) are detail
//! for -vv only.
//!
//! Unattended runs add `--log-file PATH`: the same events, with timestamps, appended to
//! PATH.YYYY-MM-DD, a new file each day (UTC), the last 30 kept. `--log-format json` writes one
//! JSON object per event (to stderr and the file alike). Each procedure run logs its start and
//! its end with duration and status (target `opsh::run`): in the log file always, on stderr
//! from -v on, so that a cron mail holds only what went wrong.

use std::io::IsTerminal;
use std::path::Path;

use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// How log events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per event, as a person reads it.
    #[default]
    Text,
    /// One JSON object per event (timestamp, level, fields, message).
    Json,
}

/// How many daily log files are kept.
pub const KEEP_LOG_FILES: usize = 30;

/// The filter for a verbosity: -q warnings and errors; default: info; -v: debug (connections,
/// each operation's duration, row counts); -vv: trace, and the libraries' own logs at debug.
/// OPSH_LOG (an EnvFilter directive such as `opsh=debug,sqlx=info`) overrides.
pub fn filter(quiet: bool, verbose: u8) -> String {
    match (quiet, verbose) {
        (true, _) => "off,opsh=warn".into(),
        (false, 0) => "off,opsh=info,opsh::run=warn".into(),
        (false, 1) => "off,opsh=debug".into(),
        _ => "debug,opsh=trace".into(),
    }
}

/// The log file's filter: what stderr shows at this verbosity, and at least opsh's info
/// (run start and end among it).
fn file_filter(verbose: u8) -> String {
    match verbose {
        0 => "off,opsh=info".into(),
        1 => "off,opsh=debug".into(),
        _ => "debug,opsh=trace".into(),
    }
}

type Boxed = Box<dyn Layer<Registry> + Send + Sync>;

pub fn init(quiet: bool, verbose: u8) {
    let _ = try_init(quiet, verbose, None, LogFormat::Text);
}

/// Sets up stderr (and the log file when given). An error says why the file cannot be used.
pub fn try_init(
    quiet: bool,
    verbose: u8,
    file: Option<&Path>,
    format: LogFormat,
) -> Result<(), String> {
    let env = || {
        std::env::var("OPSH_LOG")
            .ok()
            .and_then(|f| EnvFilter::try_new(f).ok())
    };
    let stderr_filter = || env().unwrap_or_else(|| EnvFilter::new(filter(quiet, verbose)));
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let stderr: Boxed = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(Redacted(std::io::stderr))
            .with_ansi(color)
            .without_time()
            .with_target(false)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(Redacted(std::io::stderr))
            .boxed(),
    };
    let Some(path) = file else {
        // One filter for the one output, applied before anything else sees an event.
        let _ = tracing_subscriber::registry()
            .with(vec![stderr])
            .with(stderr_filter())
            .try_init();
        return Ok(());
    };
    let appender = appender(path)?;
    let file: Boxed = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(Redacted(appender))
            .with_ansi(false)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(Redacted(appender))
            .boxed(),
    };
    // The file's filter admits at least what stderr's does; it goes first (outermost), so an
    // event (a library's log record among them) that neither wants is dropped before the
    // per-layer filter of stderr sees it.
    let _ = tracing_subscriber::registry()
        .with(vec![stderr.with_filter(stderr_filter()).boxed(), file])
        .with(env().unwrap_or_else(|| EnvFilter::new(file_filter(verbose))))
        .try_init();
    Ok(())
}

/// PATH.YYYY-MM-DD in PATH's folder (made if missing), a new file each day.
fn appender(path: &Path) -> Result<tracing_appender::rolling::RollingFileAppender, String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("--log-file {}: name a file, not a folder", path.display()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| {
        format!(
            "--log-file {}: cannot make {}: {e}",
            path.display(),
            dir.display()
        )
    })?;
    tracing_appender::rolling::RollingFileAppender::builder()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix(name)
        .max_log_files(KEEP_LOG_FILES)
        .build(&dir)
        .map_err(|e| format!("--log-file {}: {e}", path.display()))
}

/// Log output with secrets masked (crate::redact): the fmt layer formats an event whole and
/// writes it with one `write_all`, so each write holds whole lines.
struct Redacted<M>(M);

impl<'a, M: tracing_subscriber::fmt::MakeWriter<'a>> tracing_subscriber::fmt::MakeWriter<'a>
    for Redacted<M>
{
    type Writer = RedactedWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactedWriter(self.0.make_writer())
    }
}

struct RedactedWriter<W>(W);

impl<W: std::io::Write> std::io::Write for RedactedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = crate::redact::text(&String::from_utf8_lossy(buf));
        self.0.write_all(text.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
