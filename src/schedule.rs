//! `opsh schedule`: the unattended runs of opsh.toml's `[[schedule]]` tables (procedure,
//! arguments, a cron expression, target), with defaults for the guide's daily-integrity-check
//! at 02:00 and the nightly purge of old failed jobs; listed with their next run, installed as
//! /etc/cron.d/opsh (or systemd .service and .timer units) with the run lock, the log file and
//! the Prometheus output already set, and removed again.
//!
//! Cron expressions are checked when the schedule is read, by croner (a maintained parser of
//! the standard 5-field syntax with ranges, steps, lists, names and @nicknames): a bad one is a
//! configuration error naming the entry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{Settings, key};
use crate::error::Error;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Names the cron line and the units; default: the procedure.
    #[serde(default)]
    pub name: String,
    pub procedure: String,
    /// key = value arguments of the procedure.
    #[serde(default)]
    pub arguments: BTreeMap<String, toml_like::Scalar>,
    pub cron: String,
    /// A named target of opsh.toml (`--target`).
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

mod toml_like {
    use serde::{Deserialize, Serialize};

    /// An argument's value as opsh.toml may write it.
    #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
    #[serde(untagged)]
    pub enum Scalar {
        Text(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }

    impl std::fmt::Display for Scalar {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Scalar::Text(s) => write!(f, "{s}"),
                Scalar::Int(i) => write!(f, "{i}"),
                Scalar::Float(x) => write!(f, "{x}"),
                Scalar::Bool(b) => write!(f, "{b}"),
            }
        }
    }
}

/// The defaults: the guide's nightly integrity check at 02:00 and the deployment's nightly
/// purge of failed jobs older than 7 days (at 03:30, after it).
pub fn defaults() -> Vec<Entry> {
    let entry = |name: &str, cron: &str| Entry {
        name: name.into(),
        procedure: name.into(),
        arguments: BTreeMap::new(),
        cron: cron.into(),
        target: None,
        enabled: true,
    };
    vec![
        entry("daily-integrity-check", "0 2 * * *"),
        entry("purge-jobs", "30 3 * * *"),
    ]
}

/// Parses a cron expression (5 fields or an @nickname).
pub fn parse_cron(expr: &str) -> Result<croner::Cron, String> {
    let fields = expr.split_whitespace().count();
    if !expr.trim_start().starts_with('@') && fields != 5 {
        return Err(format!(
            "`{expr}` has {fields} fields; cron takes 5: minute hour day-of-month month day-of-week"
        ));
    }
    expr.parse::<croner::Cron>()
        .map_err(|e| format!("`{expr}` is not a cron expression: {e}"))
}

/// The schedule: the defaults, each replaced by a configured entry of the same name (or
/// dropped with enabled = false), plus the configured others; every cron expression checked.
pub fn entries(settings: &Settings) -> Result<Vec<Entry>, Error> {
    let raw = settings.text(key::SCHEDULE).trim();
    let configured: Vec<Entry> = if raw.is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(raw).map_err(|e| Error::Config {
            message: format!(
                "[[schedule]]: {e}; each entry has procedure, cron, and optionally name, arguments, target, enabled"
            ),
        })?
    };
    let mut out = defaults();
    for mut e in configured {
        if e.name.is_empty() {
            e.name = e.procedure.clone();
        }
        if e.name.is_empty()
            || !e
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::Config {
                message: format!(
                    "[[schedule]] `{}`: a name is letters, digits, - and _ (it names the cron line and the units)",
                    e.name
                ),
            });
        }
        match out.iter_mut().find(|d| d.name == e.name) {
            Some(d) => *d = e,
            None => out.push(e),
        }
    }
    out.retain(|e| e.enabled);
    for e in &out {
        parse_cron(&e.cron).map_err(|why| Error::Config {
            message: format!("[[schedule]] `{}`: {why}", e.name),
        })?;
    }
    Ok(out)
}

/// The next time each entry runs, in the host's local time (as cron reads its lines).
pub fn next_run(
    e: &Entry,
    after: chrono::DateTime<chrono::Local>,
) -> Option<chrono::DateTime<chrono::Local>> {
    parse_cron(&e.cron)
        .ok()?
        .find_next_occurrence(&after, false)
        .ok()
}

/// Where the unattended runs write: their log and the Prometheus text files.
pub struct Paths {
    pub opsh: PathBuf,
    pub log_file: PathBuf,
    pub metrics_dir: PathBuf,
}

impl Paths {
    pub fn of(settings: &Settings) -> Paths {
        Paths {
            opsh: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/local/bin/opsh")),
            log_file: settings.path(key::UNATTENDED_LOG_FILE),
            metrics_dir: settings.path(key::UNATTENDED_METRICS_DIR),
        }
    }
}

fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The command one entry runs: --yes (no one to answer), --wait-lock (a run of a procedure
/// that changes data waits for one already running instead of failing), the log file, and
/// the report as Prometheus metrics in the textfile collector's folder.
pub fn command(e: &Entry, paths: &Paths) -> Vec<String> {
    let mut words = vec![
        paths.opsh.display().to_string(),
        "--yes".into(),
        "--wait-lock".into(),
        "30m".into(),
        "--log-file".into(),
        paths.log_file.display().to_string(),
        "--format".into(),
        "prometheus".into(),
        "--output".into(),
        paths
            .metrics_dir
            .join(format!("opsh_{}.prom", e.name.replace('-', "_")))
            .display()
            .to_string(),
    ];
    if let Some(t) = &e.target {
        words.push("--target".into());
        words.push(t.clone());
    }
    words.push(e.procedure.clone());
    for (k, v) in &e.arguments {
        words.push(format!("{k}={v}"));
    }
    words
}

fn shell(words: &[String]) -> String {
    words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

pub const CRON_FILE: &str = "opsh";
const HEADER: &str = "# Written by `opsh schedule install` from opsh.toml's [[schedule]]; `opsh schedule remove` removes it.\n";

/// /etc/cron.d/opsh: one line per entry, run as root.
pub fn cron_file(entries: &[Entry], paths: &Paths) -> String {
    let mut text = String::from(HEADER);
    text.push_str(
        "SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
    );
    for e in entries {
        // cron reads an unescaped % in a command as a newline.
        let line = shell(&command(e, paths)).replace('%', "\\%");
        text.push_str(&format!("# {}\n{} root {line}\n", e.name, e.cron.trim()));
    }
    text
}

/// A cron expression as systemd's OnCalendar, for the 5-field forms (numbers, *, lists,
/// ranges, steps, names).
pub fn on_calendar(expr: &str) -> Result<String, String> {
    parse_cron(expr)?;
    // An @nickname as the 5 fields cron reads it as (systemd's own `weekly` is Monday, cron's
    // @weekly Sunday, so the words are not passed through).
    let expr = match expr.trim() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other => other,
    };
    let f: Vec<&str> = expr.split_whitespace().collect();
    if f.len() != 5 {
        return Err(format!("`{expr}` has no systemd form"));
    }
    let field = |s: &str| -> String {
        s.split(',')
            .map(|part| {
                let (range, step) = match part.split_once('/') {
                    Some((r, st)) => (r, Some(st)),
                    None => (part, None),
                };
                let range = if range == "*" && step.is_some() {
                    "0".to_string()
                } else {
                    range.replace('-', "..")
                };
                match step {
                    Some(st) => format!("{range}/{st}"),
                    None => range,
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    const DAYS: [&str; 8] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let dow = if f[4] == "*" {
        String::new()
    } else {
        let named: Result<Vec<String>, String> = f[4]
            .split(',')
            .map(|p| {
                let name = |d: &str| -> Result<String, String> {
                    match d.parse::<usize>() {
                        Ok(n) if n < 8 => Ok(DAYS[n].to_string()),
                        _ if d.len() == 3 => Ok(d.to_string()),
                        _ => Err(format!("`{expr}`: day of week `{d}` has no systemd form")),
                    }
                };
                match p.split_once('-') {
                    Some((a, b)) => Ok(format!("{}..{}", name(a)?, name(b)?)),
                    None => name(p),
                }
            })
            .collect();
        format!("{} ", named?.join(","))
    };
    let month = if f[3] == "*" { "*".into() } else { field(f[3]) };
    let dom = if f[2] == "*" { "*".into() } else { field(f[2]) };
    Ok(format!(
        "{dow}*-{month}-{dom} {}:{}:00",
        field(f[1]),
        field(f[0])
    ))
}

/// The unit files of one entry: (file name, text).
pub fn units(e: &Entry, paths: &Paths) -> Result<Vec<(String, String)>, String> {
    let calendar = on_calendar(&e.cron)?;
    let base = format!("opsh-{}", e.name);
    Ok(vec![
        (
            format!("{base}.service"),
            format!(
                "# Written by `opsh schedule install --systemd`; `opsh schedule remove --systemd` removes it.\n[Unit]\nDescription=opsh {}\n\n[Service]\nType=oneshot\nExecStart={}\n",
                e.procedure,
                shell(&command(e, paths))
            ),
        ),
        (
            format!("{base}.timer"),
            format!(
                "# Written by `opsh schedule install --systemd`; cron `{}`.\n[Unit]\nDescription=opsh {} ({})\n\n[Timer]\nOnCalendar={calendar}\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n",
                e.cron, e.procedure, e.cron
            ),
        ),
    ])
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Io(format!("{}: {e}", path.display()))
}

/// Writes the cron file (or the units) into `dir`; returns the paths written.
pub fn install(
    entries: &[Entry],
    paths: &Paths,
    systemd: bool,
    dir: &Path,
) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let mut files: Vec<(String, String)> = Vec::new();
    if systemd {
        for e in entries {
            files.extend(units(e, paths).map_err(|why| Error::Config {
                message: format!("[[schedule]] `{}`: {why}", e.name),
            })?);
        }
    } else {
        files.push((CRON_FILE.into(), cron_file(entries, paths)));
    }
    if systemd {
        // Units of entries no longer scheduled go.
        remove(true, dir)?;
    }
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(&name);
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).map_err(|e| io_err(&tmp, e))?;
        // cron ignores a file in cron.d that others can write.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| io_err(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
        written.push(path);
    }
    // The runs append to the log and write the metrics there; a folder that is not there would
    // fail each run until someone noticed. Not a failure of the install: the runs say it too.
    let log_dir = paths
        .log_file
        .parent()
        .filter(|d| !d.as_os_str().is_empty());
    for folder in log_dir.into_iter().chain([paths.metrics_dir.as_path()]) {
        if let Err(e) = std::fs::create_dir_all(folder) {
            tracing::warn!(
                "cannot create {}: {e}; the scheduled runs cannot write there until it exists",
                folder.display()
            );
        }
    }
    Ok(written)
}

/// Removes what install wrote (only files that carry its header); returns the paths removed.
pub fn remove(systemd: bool, dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut removed = Vec::new();
    let candidates: Vec<PathBuf> = if systemd {
        match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    n.starts_with("opsh-") && (n.ends_with(".service") || n.ends_with(".timer"))
                })
                .collect(),
            Err(_) => Vec::new(),
        }
    } else {
        vec![dir.join(CRON_FILE)]
    };
    for path in candidates {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if !text.starts_with("# Written by `opsh schedule install") {
            continue;
        }
        std::fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
        removed.push(path);
    }
    removed.sort();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_forms_become_systemd_calendars() {
        assert_eq!(on_calendar("0 2 * * *").unwrap(), "*-*-* 2:0:00");
        assert_eq!(
            on_calendar("*/15 * * * 1-5").unwrap(),
            "Mon..Fri *-*-* *:0/15:00"
        );
        assert_eq!(
            on_calendar("30 3 1,15 * 0").unwrap(),
            "Sun *-*-1,15 3:30:00"
        );
        assert_eq!(on_calendar("@daily").unwrap(), "*-*-* 0:0:00");
        assert_eq!(on_calendar("@weekly").unwrap(), "Sun *-*-* 0:0:00");
        assert_eq!(on_calendar("@annually").unwrap(), "*-1-1 0:0:00");
        assert_eq!(on_calendar("@hourly").unwrap(), "*-*-* *:0:00");
    }

    #[test]
    fn bad_cron_expressions_say_why() {
        assert!(parse_cron("0 2 * *").unwrap_err().contains("has 4 fields"));
        assert!(
            parse_cron("61 2 * * *")
                .unwrap_err()
                .contains("is not a cron expression")
        );
        assert!(parse_cron("@daily").is_ok());
    }
}
