//! Running a procedure the way cron does: against one target or several in turn (one combined
//! report), under its run lock when it changes data, logged from start to end, rendered as
//! text, a JSON envelope, Prometheus metrics or a Nagios plugin's output (src/output), to stdout
//! or atomically to a file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rhai::Dynamic;

use crate::bridge::{Bridge, Stop};
use crate::config::Settings;
use crate::error::{Error, code};
use crate::host::{Host, Outcome};
use crate::ops::runlock::{self, Refusal};
use crate::ops::{Flags, Target};
use crate::output::{self, Ran};
use crate::report::{Marks, Status};

/// What a run prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// The report as a person reads it.
    #[default]
    Text,
    /// One JSON document (as --json).
    Json,
    /// Prometheus text exposition format, for node_exporter's textfile collector.
    Prometheus,
    /// A Nagios plugin's output: state and summary, performance data, then the report.
    Nagios,
}

/// How to run a procedure unattended.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub format: Format,
    /// Write the output here atomically (temp file in the same folder, then rename).
    pub output: Option<PathBuf>,
    /// Wait this long for another run of a data-changing procedure to end.
    pub wait_lock: Option<Duration>,
    /// Named targets, in order; empty: the configuration's top level.
    pub targets: Vec<String>,
}

/// Runs `procedure` (a name or a .rhai path) with `key=value` words and prints or writes its
/// output; the exit code.
pub fn run(
    settings: &Settings,
    bridge: &Bridge,
    flags: Flags,
    procedure: &str,
    words: &[String],
    opts: &Options,
) -> Result<u8, Error> {
    let given = crate::host::params::parse_words(words)?;
    // Every target's settings first: a misspelt target stops the run before anything runs.
    let targets: Vec<(Option<String>, Settings)> = if opts.targets.is_empty() {
        vec![(settings.target_name().map(str::to_string), settings.clone())]
    } else {
        opts.targets
            .iter()
            .map(|name| Ok((Some(name.clone()), settings.for_target(name)?)))
            .collect::<Result<_, Error>>()?
    };
    // With a document on stdout, prints go to stderr.
    let document_on_stdout = opts.format != Format::Text;
    let mut runs = Vec::new();
    let mut name = procedure.to_string();
    for (target_name, settings) in targets {
        let mut host = Host::new(
            Target::new(settings, bridge.clone(), flags),
            document_on_stdout,
        );
        let started_at = chrono::Utc::now();
        let started = Instant::now();
        let result = run_one(&mut host, procedure, &given, opts, &mut name);
        let run = Ran {
            procedure: name.clone(),
            target: target_name,
            started_at,
            seconds: started.elapsed().as_secs_f64(),
            result,
        };
        let status = run.status();
        // A run cut short by its reader says so: cron's log shows why a check has no result.
        let cut_short = match &run.result {
            Err(Error::Output { .. }) => ", stopped: stdout can take no more output",
            _ => "",
        };
        tracing::info!(
            target: "opsh::run",
            procedure = %name,
            target = run.label(),
            duration_seconds = run.seconds,
            status = word(status),
            "{name} on {} ended {} after {:.1}s{cut_short}",
            run.label(),
            word(status),
            run.seconds
        );
        {
            // Clients close their connections on drop, which needs the runtime.
            let _context = bridge.handle().enter();
            drop(host);
        }
        // Ctrl-C, --timeout or a closed stdout ends the whole run, the targets after it included.
        if matches!(
            run.result,
            Err(Error::Interrupted | Error::TimedOut(_) | Error::Output { .. })
        ) {
            // A single run's JSON envelope or plugin line still says how it ended (a closed
            // stdout takes nothing more).
            if opts.targets.len() <= 1
                && matches!(opts.format, Format::Json | Format::Nagios)
                && !matches!(run.result, Err(Error::Output { .. }))
            {
                return finish(vec![run], opts);
            }
            return run.result.map(|_| code::UNKNOWN);
        }
        runs.push(run);
    }
    finish(runs, opts)
}

/// One target: find the procedure, check its arguments, take its lock, run it.
fn run_one(
    host: &mut Host,
    procedure: &str,
    given: &[(String, String)],
    opts: &Options,
    name: &mut String,
) -> Result<Outcome, Error> {
    let script = host.catalog().resolve(procedure)?;
    *name = script.name.clone();
    let declared = crate::host::params::declared(&script.display, &script.source)?;
    let args =
        crate::host::params::apply(&script.name, &declared, given.to_vec(), host.settings())?;
    let target = host.target();
    target.audit.set_run(
        &script.name,
        serde_json::to_value(Dynamic::from_map(args.clone())).unwrap_or_default(),
    );
    crate::ops::audit::flush_pending(&target.settings);
    let label = target.label().to_string();
    tracing::info!(
        target: "opsh::run",
        procedure = %script.name,
        target = %label,
        "{} on {label} started",
        script.name
    );
    // A dry run changes nothing, so it needs no lock (and may watch a real run).
    let lock = if crate::host::params::changes_data(&script.source) && !target.flags.dry_run {
        match runlock::acquire(&target, &script.name, opts.wait_lock) {
            Ok(lock) => Some(lock),
            Err(Refusal::Held { holder, waited }) => {
                let by = holder.map(|h| format!(" ({h})")).unwrap_or_default();
                let message = match waited {
                    Some(w) => format!(
                        "{} is already running{by}; still running after waiting {} (--wait-lock)",
                        script.name,
                        crate::duration::format(Duration::from_secs(w.as_secs()))
                    ),
                    None => format!(
                        "{} is already running{by}; not started (--wait-lock DUR waits for it)",
                        script.name
                    ),
                };
                return Err(Error::Locked { message });
            }
            Err(Refusal::Unreachable(e)) => {
                tracing::warn!(
                    "{}: running without the run lock, PostgreSQL is unreachable: {e}",
                    script.name
                );
                None
            }
            Err(Refusal::Stopped(Stop::Interrupt)) => return Err(Error::Interrupted),
            Err(Refusal::Stopped(Stop::Timeout)) => {
                return Err(Error::TimedOut(
                    host.settings()
                        .optional_duration(crate::config::key::RUN_TIMEOUT)
                        .unwrap_or_default(),
                ));
            }
            Err(Refusal::Stopped(Stop::Output)) => return Err(crate::host::output_error()),
        }
    } else {
        None
    };
    let result = host.run_script(&script, args);
    if let Some(lock) = lock {
        // Cancelled: the lock goes when the connection drops, at exit.
        let _ = host.bridge().block_on(lock.release());
    }
    result
}

/// Prints or writes what the runs produced; the exit code.
fn finish(mut runs: Vec<Ran>, opts: &Options) -> Result<u8, Error> {
    let several = opts.targets.len() > 1;
    let single = runs.len() == 1 && !several;
    if single && opts.output.is_none() && opts.format == Format::Text {
        // As every other command prints: the report, the value, or the error.
        let run = runs.remove(0);
        return Ok(output::outcome(run.result?, false));
    }
    // A single run that failed says so as any command does; under --format prometheus its
    // metrics are still written (status unknown or critical), unless it was locked out: then
    // the holder writes them. JSON and Nagios say it in their own document as well.
    if single
        && let Err(e) = &runs[0].result
        && (opts.format == Format::Text
            || (opts.format == Format::Prometheus && matches!(e, Error::Locked { .. })))
    {
        return Err(runs.remove(0).result.expect_err("a failed run"));
    }
    let mut status = runs
        .iter()
        .map(Ran::status)
        .max()
        .unwrap_or(Status::Unknown);
    let to_file = opts.output.is_some();
    let text = match opts.format {
        Format::Text => {
            let marks = output::marks(!to_file && output::stdout_is_terminal());
            if single && let Ok(outcome) = &runs[0].result {
                output::ran::text_of(outcome, marks)
            } else {
                combined_text(&runs, status, marks)
            }
        }
        Format::Json => format!("{}\n", output::envelope::document(&runs, several)),
        Format::Nagios => {
            let (text, nagios_status) = output::nagios::render(&runs, several);
            status = nagios_status;
            text
        }
        Format::Prometheus => {
            let previous = opts
                .output
                .as_ref()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default();
            output::prometheus::render(&runs, &previous, chrono::Utc::now())
        }
    };
    // JSON and Nagios carry a single run's error in their document; it is said on stderr too,
    // once, first (as any failed command says it).
    let said = single
        && matches!(opts.format, Format::Json | Format::Nagios)
        && runs[0]
            .result
            .as_ref()
            .err()
            .inspect(|e| output::error(e))
            .is_some();
    match &opts.output {
        Some(path) => write_atomically(
            path,
            &crate::redact::text(&anstream::adapter::strip_str(&text).to_string()),
        )
        .map_err(|e| Error::Io(format!("--output {}: {e}", path.display())))?,
        None if opts.format == Format::Text => output::out_styled(&text),
        None => output::out(&text),
    }
    if single && let Err(e) = &runs[0].result {
        // Text and Prometheus end as any failed command does.
        if said {
            return Ok(e.exit_code());
        }
        return Err(runs.remove(0).result.expect_err("a failed run"));
    }
    if single && let Ok(Outcome::Exit(_)) = &runs[0].result {
        return Ok(runs[0].exit_code());
    }
    Ok(status.exit_code())
}

fn word(status: Status) -> &'static str {
    match status {
        Status::Ok => "ok",
        Status::Warning => "warning",
        Status::Critical => "critical",
        Status::Unknown => "unknown",
    }
}

fn combined_text(runs: &[Ran], status: Status, marks: Marks) -> String {
    let names: Vec<&str> = runs.iter().map(Ran::label).collect();
    let procedure = runs.first().map(|r| r.procedure.as_str()).unwrap_or("");
    let mut out = format!(
        "{procedure} on {} targets: {}\n",
        runs.len(),
        names.join(", ")
    );
    for run in runs {
        out.push_str(&format!("\n── {} ──\n", run.label()));
        match &run.result {
            Ok(outcome) => out.push_str(&output::ran::text_of(outcome, marks)),
            Err(e) => {
                let status = run.status();
                let mark = match marks {
                    Marks::Emoji => format!("{} {}", status.mark(marks), word(status)),
                    Marks::Words => status.upper().to_string(),
                };
                out.push_str(&format!("{mark}: {}\n", output::ran::error_text(e)));
            }
        }
    }
    let each: Vec<String> = runs
        .iter()
        .map(|r| format!("{} {}", r.label(), word(r.status())))
        .collect();
    out.push_str(&format!(
        "\nAll targets: {} ({})\n",
        word(status),
        each.join(", ")
    ));
    out
}

/// Writes `text` to `path` atomically: a temp file in the same folder, synced, then renamed
/// over it, so a reader (node_exporter) sees the old file or the new one, never a part. On
/// failure the temp file is removed and `path` is left as it was.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("names no file"))?
        .to_string_lossy()
        .into_owned();
    let temp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        // Keep the mode of the file it replaces.
        if let Ok(meta) = std::fs::metadata(path) {
            std::fs::set_permissions(&temp, meta.permissions())?;
        }
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}
