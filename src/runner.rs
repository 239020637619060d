//! Running a procedure the way cron does: against one target or several in turn (one combined
//! report), under its run lock when it changes data, logged from start to end, rendered as
//! text, JSON or Prometheus metrics, to stdout or atomically to a file.

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
use crate::output;
use crate::report::{Report, Status};

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

/// One target's run.
struct TargetRun {
    /// The target's name, or None for the configuration's top level.
    name: Option<String>,
    result: Result<Outcome, Error>,
    seconds: f64,
}

impl TargetRun {
    fn label(&self) -> &str {
        self.name.as_deref().unwrap_or("default")
    }

    /// The status this target's run counts as: its report's, its exit's; a failed run is
    /// critical (the target is down, or the procedure broke on it), one that was refused
    /// (already running, not confirmed, a usage error) unknown.
    fn status(&self) -> Status {
        match &self.result {
            Ok(outcome) => outcome_status(outcome),
            Err(Error::Locked { .. } | Error::Refused { .. } | Error::Usage { .. })
            | Err(Error::Output { .. })
            | Err(Error::Config { .. } | Error::UnknownProcedure { .. }) => Status::Unknown,
            Err(_) => Status::Critical,
        }
    }
}

fn outcome_value(outcome: &Outcome) -> &Dynamic {
    match outcome {
        Outcome::Value(v) | Outcome::Exit(v) => v,
    }
}

fn outcome_report(outcome: &Outcome) -> Option<Report> {
    outcome_value(outcome).clone().try_cast::<Report>()
}

fn outcome_status(outcome: &Outcome) -> Status {
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
        let started = Instant::now();
        let result = run_one(&mut host, procedure, &given, opts, &mut name);
        let run = TargetRun {
            name: target_name,
            result,
            seconds: started.elapsed().as_secs_f64(),
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
            return run.result.map(|_| code::UNKNOWN);
        }
        runs.push(run);
    }
    finish(&name, runs, opts)
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
fn finish(procedure: &str, mut runs: Vec<TargetRun>, opts: &Options) -> Result<u8, Error> {
    let single = runs.len() == 1 && opts.targets.len() <= 1;
    if single
        && opts.output.is_none()
        && opts.targets.is_empty()
        && opts.format != Format::Prometheus
    {
        // As every other command prints: the report, the value, or the error.
        let run = runs.into_iter().next().expect("one run");
        return Ok(output::outcome(run.result?, opts.format == Format::Json));
    }
    // A single run that failed says so as any command does; under --format prometheus its
    // metrics are still written (status unknown or critical), unless it was locked out: then
    // the holder writes them.
    if single
        && let Err(e) = &runs[0].result
        && (opts.format != Format::Prometheus || matches!(e, Error::Locked { .. }))
    {
        return Err(runs.remove(0).result.expect_err("a failed run"));
    }
    let status = runs
        .iter()
        .map(TargetRun::status)
        .max()
        .unwrap_or(Status::Unknown);
    let text = match opts.format {
        Format::Text => {
            if single && let Ok(outcome) = &runs[0].result {
                text_of(outcome)
            } else {
                combined_text(procedure, &runs, status)
            }
        }
        Format::Json => {
            if single && let Ok(outcome) = &runs[0].result {
                let mut doc = json_of(outcome);
                if let (Some(name), Some(map)) = (&runs[0].name, doc.as_object_mut()) {
                    map.insert("target".into(), name.clone().into());
                }
                format!("{doc}\n")
            } else {
                format!("{}\n", combined_json(procedure, &runs, status))
            }
        }
        Format::Prometheus => {
            let previous = opts
                .output
                .as_ref()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default();
            prometheus(procedure, &runs, &previous, chrono::Utc::now())
        }
    };
    match &opts.output {
        Some(path) => write_atomically(
            path,
            &crate::redact::text(&anstream::adapter::strip_str(&text).to_string()),
        )
        .map_err(|e| Error::Io(format!("--output {}: {e}", path.display())))?,
        None if opts.format == Format::Text => output::out_styled(&text),
        None => output::out(&text),
    }
    // A single run's error is still said, and decides the exit code, as without --output.
    if single && runs[0].result.is_err() {
        return Err(runs.remove(0).result.expect_err("a failed run"));
    }
    Ok(status.exit_code())
}

fn text_of(outcome: &Outcome) -> String {
    if let Some(report) = outcome_report(outcome) {
        return report.to_text();
    }
    let value = outcome_value(outcome);
    if value.is_unit() || (matches!(outcome, Outcome::Exit(_)) && value.is_int()) {
        String::new()
    } else {
        format!("{}\n", output::display(value))
    }
}

fn json_of(outcome: &Outcome) -> serde_json::Value {
    if let Some(report) = outcome_report(outcome) {
        return report.to_json();
    }
    match outcome {
        Outcome::Exit(v) if v.is_int() => {
            serde_json::json!({ "exit_code": v.as_int().unwrap_or(3) })
        }
        _ => serde_json::to_value(outcome_value(outcome)).unwrap_or(serde_json::Value::Null),
    }
}

fn word(status: Status) -> &'static str {
    match status {
        Status::Ok => "ok",
        Status::Warning => "warning",
        Status::Critical => "critical",
        Status::Unknown => "unknown",
    }
}

fn error_text(e: &Error) -> String {
    anstream::adapter::strip_str(&e.to_string())
        .to_string()
        .trim_end()
        .to_string()
}

fn combined_text(procedure: &str, runs: &[TargetRun], status: Status) -> String {
    let names: Vec<&str> = runs.iter().map(TargetRun::label).collect();
    let mut out = format!(
        "{procedure} on {} targets: {}\n",
        runs.len(),
        names.join(", ")
    );
    for run in runs {
        out.push_str(&format!("\n── {} ──\n", run.label()));
        match &run.result {
            Ok(outcome) => out.push_str(&text_of(outcome)),
            Err(e) => out.push_str(&format!(
                "{} {}: {}\n",
                if run.status() == Status::Critical {
                    "❌"
                } else {
                    "❔"
                },
                word(run.status()),
                error_text(e)
            )),
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

fn combined_json(procedure: &str, runs: &[TargetRun], status: Status) -> serde_json::Value {
    let targets: Vec<serde_json::Value> = runs
        .iter()
        .map(|run| {
            let mut doc = serde_json::json!({
                "target": run.label(),
                "status": run.status(),
                "exit_code": run.status().exit_code(),
                "duration_seconds": run.seconds,
            });
            match &run.result {
                Ok(outcome) => doc["report"] = json_of(outcome),
                Err(e) => {
                    doc["error"] = serde_json::json!({ "kind": e.kind(), "message": error_text(e) })
                }
            }
            doc
        })
        .collect();
    serde_json::json!({
        "procedure": procedure,
        "status": status,
        "exit_code": status.exit_code(),
        "targets": targets,
    })
}

/// One metric family: its samples in order, under one HELP and TYPE.
struct Family {
    name: String,
    help: String,
    samples: Vec<(String, f64)>,
}

#[derive(Default)]
struct Families(Vec<Family>);

impl Families {
    fn add(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        let labels = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
            .collect::<Vec<_>>()
            .join(",");
        match self.0.iter_mut().find(|f| f.name == name) {
            Some(f) => f.samples.push((labels, value)),
            None => self.0.push(Family {
                name: name.to_string(),
                help: help.to_string(),
                samples: vec![(labels, value)],
            }),
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.0 {
            out.push_str(&format!(
                "# HELP {} {}\n# TYPE {} gauge\n",
                f.name, f.help, f.name
            ));
            for (labels, value) in &f.samples {
                out.push_str(&format!("{}{{{labels}}} {}\n", f.name, number(*value)));
            }
        }
        out
    }
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// A label value in the exposition format: backslash, double quote and newline escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A metric name part from a report data key: [a-zA-Z0-9_], never starting with a digit.
fn metric_part(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Numbers and booleans of a report's data, nested maps flattened with `_`; arrays (samples
/// of ids) and text are left out.
fn numeric_data(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, f64)>) {
    match value {
        serde_json::Value::Number(n) => {
            if let Some(v) = n.as_f64() {
                out.push((prefix.to_string(), v));
            }
        }
        serde_json::Value::Bool(b) => out.push((prefix.to_string(), f64::from(u8::from(*b)))),
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                numeric_data(&format!("{prefix}_{}", metric_part(k)), v, out);
            }
        }
        _ => {}
    }
}

const LAST_SUCCESS: &str = "opsh_last_success_timestamp_seconds";

/// The value of a sample in an earlier exposition, by metric name and exact label text.
fn previous_value(previous: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    previous
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// The runs as Prometheus metrics: opsh_status and opsh_duration_seconds per target,
/// opsh_check_status per check, the report's numeric data as opsh_data_<key>, and
/// opsh_last_success_timestamp_seconds (now when the run was ok, else the value the previous
/// exposition held).
fn prometheus(
    procedure: &str,
    runs: &[TargetRun],
    previous: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let mut f = Families::default();
    for run in runs {
        let target = run.label();
        let base = [("procedure", procedure), ("target", target)];
        f.add(
            "opsh_status",
            "The procedure's status: 0 ok, 1 warning, 2 critical, 3 unknown (its exit code).",
            &base,
            f64::from(run.status().exit_code()),
        );
        f.add(
            "opsh_duration_seconds",
            "How long the procedure ran.",
            &base,
            run.seconds,
        );
        let label_text = base
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
            .collect::<Vec<_>>()
            .join(",");
        let last = if run.status() == Status::Ok {
            Some(now.timestamp_millis() as f64 / 1000.0)
        } else {
            previous_value(previous, LAST_SUCCESS, &label_text)
        };
        if let Some(last) = last {
            f.add(
                LAST_SUCCESS,
                "When the procedure last ended ok (Unix time).",
                &base,
                last,
            );
        }
        let Some(report) = run.result.as_ref().ok().and_then(outcome_report) else {
            continue;
        };
        let data = report.snapshot();
        for check in &data.checks {
            f.add(
                "opsh_check_status",
                "Each check's status: 0 ok, 1 warning, 2 critical, 3 unknown.",
                &[
                    ("procedure", procedure),
                    ("target", target),
                    ("check", &check.name),
                ],
                f64::from(check.status.exit_code()),
            );
        }
        let mut numbers = Vec::new();
        for (key, value) in &data.data {
            numeric_data(
                &format!("opsh_data_{}", metric_part(key)),
                value,
                &mut numbers,
            );
        }
        for (name, value) in numbers {
            f.add(
                &name,
                "A figure of the procedure's report (r.data).",
                &base,
                value,
            );
        }
    }
    f.render()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_names_sanitised() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(metric_part("stuck jobs-1"), "stuck_jobs_1");
    }

    #[test]
    fn previous_last_success_is_found_by_its_labels() {
        let previous = "opsh_last_success_timestamp_seconds{procedure=\"x\",target=\"a\"} 17.5\n";
        assert_eq!(
            previous_value(previous, LAST_SUCCESS, "procedure=\"x\",target=\"a\""),
            Some(17.5)
        );
        assert_eq!(
            previous_value(previous, LAST_SUCCESS, "procedure=\"x\",target=\"b\""),
            None
        );
    }
}
