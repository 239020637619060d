//! Settings: defaults → opsh.toml → .env → environment → flags, each value remembering where it
//! came from so that `opsh config` can say so.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod key;
mod qdrant_urls;
mod toml_file;

pub use qdrant_urls::Resolved;

pub use key::expand_home;
use key::{KEYS, Key, Kind};
use toml_file::{Values, line_of, parse_toml};

use crate::duration;
use crate::error::Error;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    DotEnv(PathBuf),
    Env(String),
    Flag(&'static str),
    /// A named target's section of the config file.
    Target(PathBuf, String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "{}", p.display()),
            Source::DotEnv(p) => write!(f, "{}", p.display()),
            Source::Env(var) => write!(f, "env {var}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
            Source::Target(p, name) => write!(f, "{} [targets.{name}]", p.display()),
        }
    }
}

#[derive(Debug, Clone)]
struct Value {
    text: String,
    source: Source,
}

/// The inputs that decide the settings beside the files on disk.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// --config FILE
    pub config_file: Option<PathBuf>,
    /// --timeout DUR
    pub timeout: Option<String>,
    /// --emoji WHEN
    pub emoji: Option<String>,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    values: BTreeMap<&'static str, Value>,
    /// The named targets of the config files (`[targets.prod]`), each with its own values, in
    /// the order of the files that set them.
    targets: BTreeMap<String, Vec<(PathBuf, Values)>>,
    /// The configuration files read, in order, and the .env read, if any.
    files: Vec<PathBuf>,
    dotenv: Option<PathBuf>,
    /// The target these settings are for, when one was chosen.
    target: Option<String>,
}

/// One line of `opsh config`.
#[derive(Debug, serde::Serialize)]
pub struct Shown {
    pub key: &'static str,
    pub value: String,
    pub source: String,
}

impl Settings {
    /// Loads the settings from the standard places, as the CLI does.
    pub fn load(overrides: &Overrides) -> Result<Settings, Error> {
        let env = environment()?;
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Self::load_from(overrides, &env, &cwd)
    }

    /// Loads the settings with an explicit environment and working directory.
    pub fn load_from(
        overrides: &Overrides,
        env: &BTreeMap<String, String>,
        cwd: &Path,
    ) -> Result<Settings, Error> {
        let mut values: BTreeMap<&'static str, Value> = KEYS
            .iter()
            .map(|k| {
                (
                    k.name,
                    Value {
                        text: k.default.to_string(),
                        source: Source::Default,
                    },
                )
            })
            .collect();

        let mut targets: BTreeMap<String, Vec<(PathBuf, Values)>> = BTreeMap::new();
        let files = config_files(overrides, env, cwd)?;
        for path in &files {
            trusted(path, "config file")?;
            let text = read_text(path, "config file")?;
            warn_if_secret_is_readable(path, &text);
            let (top, named) = parse_toml(path, &text)?;
            for (name, values) in named {
                targets
                    .entry(name)
                    .or_default()
                    .push((path.clone(), values));
            }
            for (key, text) in top {
                values.insert(
                    key,
                    Value {
                        text,
                        source: Source::File(path.clone()),
                    },
                );
            }
        }

        let dotenv_path = dotenv_file(&values, env, cwd);
        let mut dotenv = None;
        if dotenv_path.is_file() {
            trusted(&dotenv_path, "file")?;
            let pairs = read_dotenv(&dotenv_path)?;
            if let Ok(text) = std::fs::read_to_string(&dotenv_path) {
                warn_if_secret_is_readable(&dotenv_path, &text);
            }
            warn_unknown_vars(&pairs, &dotenv_path.display().to_string());
            apply_env(&mut values, &pairs, |_| Source::DotEnv(dotenv_path.clone()));
            dotenv = Some(dotenv_path);
        }
        warn_unknown_vars(env, "the environment");
        apply_env(&mut values, env, |var| Source::Env(var.to_string()));

        if let Some(timeout) = &overrides.timeout {
            values.insert(
                key::RUN_TIMEOUT.name(),
                Value {
                    text: timeout.clone(),
                    source: Source::Flag("--timeout"),
                },
            );
        }
        if let Some(emoji) = &overrides.emoji {
            values.insert(
                key::OUTPUT_EMOJI.name(),
                Value {
                    text: emoji.clone(),
                    source: Source::Flag("--emoji"),
                },
            );
        }

        for key in KEYS {
            let value = &values[key.name];
            key::validate(key, &value.text).map_err(|why| Error::Config {
                message: format!("key `{}` (from {}): {why}", key.name, value.source),
            })?;
        }
        resolve_relative_paths(&mut values);
        Ok(Settings {
            values,
            targets,
            target: None,
            files,
            dotenv,
        })
    }

    /// The configuration files read, in the order they were applied.
    pub fn files_read(&self) -> &[PathBuf] {
        &self.files
    }

    /// The .env read, if one was.
    pub fn dotenv_read(&self) -> Option<&Path> {
        self.dotenv.as_deref()
    }

    /// The names of the targets in the config file (`[targets.NAME]`), sorted.
    pub fn target_names(&self) -> Vec<String> {
        self.targets.keys().cloned().collect()
    }

    /// The target these settings are for (`--target NAME`), if any.
    pub fn target_name(&self) -> Option<&str> {
        self.target.as_deref()
    }

    /// The settings of a named target: its section's values over everything else but flags.
    /// The operator named the target, so its URLs win over DATABASE_URL and the like from the
    /// environment or .env, which would otherwise send every target to the same place.
    pub fn for_target(&self, name: &str) -> Result<Settings, Error> {
        let Some(sections) = self.targets.get(name) else {
            let names = self.target_names();
            let known = if names.is_empty() {
                "the config file defines no [targets.NAME] section".to_string()
            } else {
                format!(
                    "the targets are {}",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let hint = crate::suggest::closest(name, names.iter().map(String::as_str))
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            return Err(Error::Config {
                message: format!("unknown target `{name}`; {hint}{known}"),
            });
        };
        let mut settings = self.clone();
        for (path, values) in sections {
            for (key, text) in values {
                if matches!(
                    settings.values.get(key),
                    Some(Value {
                        source: Source::Flag(_),
                        ..
                    })
                ) {
                    continue;
                }
                settings.values.insert(
                    key,
                    Value {
                        text: text.clone(),
                        source: Source::Target(path.clone(), name.to_string()),
                    },
                );
            }
        }
        resolve_relative_paths(&mut settings.values);
        settings.target = Some(name.to_string());
        Ok(settings)
    }

    fn raw(&self, name: &str) -> &str {
        // Every key of KEYS is given a default when loaded, and the typed constants name only
        // keys of KEYS, so this lookup cannot miss.
        self.values.get(name).map(|v| v.text.as_str()).unwrap_or("")
    }

    /// A text value, e.g. `key::COMPOSE_PROJECT`.
    pub fn text(&self, key: key::Text) -> &str {
        self.raw(key.name())
    }

    /// A text value as a path, `~` expanded.
    pub fn path(&self, key: key::Text) -> PathBuf {
        expand_home(self.raw(key.name()))
    }

    /// A duration value (validated at load time, so never missing).
    pub fn duration(&self, key: key::Dur) -> Duration {
        duration::parse(self.raw(key.name())).unwrap_or_default()
    }

    /// A duration that may be unset.
    pub fn optional_duration(&self, key: key::OptDur) -> Option<Duration> {
        let raw = self.raw(key.name());
        if raw.is_empty() {
            None
        } else {
            duration::parse(raw).ok()
        }
    }

    /// An integer value (validated at load time).
    pub fn int(&self, key: key::Int) -> i64 {
        self.raw(key.name()).trim().parse().unwrap_or_default()
    }

    /// A list value's items.
    pub fn list(&self, key: key::List) -> Vec<String> {
        self.raw(key.name())
            .split(':')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// A list of paths, `~` expanded.
    pub fn paths(&self, key: key::List) -> Vec<PathBuf> {
        self.list(key).iter().map(|p| expand_home(p)).collect()
    }

    /// A setting and where its value came from, as an error names it: `postgres.url, from
    /// DATABASE_URL`, `…, from /etc/opsh/opsh.toml`, or for a default the variables that would
    /// set it (`…, the default; set it or DATABASE_URL`).
    pub fn origin(&self, key: key::Text) -> String {
        let name = key.name();
        match self.values.get(name).map(|v| &v.source) {
            Some(Source::Env(var)) => format!("{name}, from {var}"),
            Some(Source::Default) | None => {
                let vars = key::find(name).map(|k| k.env.to_vec()).unwrap_or_default();
                match vars.as_slice() {
                    [] => format!("{name}, the default"),
                    vars => format!("{name}, the default; set it or {}", vars.join(" or ")),
                }
            }
            Some(other) => format!("{name}, from {other}"),
        }
    }

    /// Where a setting named as data got its value (`default`, a file, `env VAR`, …).
    pub fn source_by_name(&self, name: &str) -> Option<String> {
        self.values.get(name).map(|v| v.source.to_string())
    }

    /// The text of a setting named as data (a spec's or a script's declared default), or None
    /// for a name that is no setting.
    pub fn text_by_name(&self, name: &str) -> Option<&str> {
        key::find(name).map(|k| self.raw(k.name))
    }

    /// The value as `opsh config` shows it: secrets redacted.
    pub fn shown(&self) -> Vec<Shown> {
        KEYS.iter()
            .map(|k| {
                let v = &self.values[k.name];
                // A derived address shows what opsh uses, and why.
                let (text, source) = match self.derived(k.name) {
                    Some(r) => (r.url, r.source),
                    None => (v.text.clone(), v.source.to_string()),
                };
                let value = match k.kind {
                    Kind::Url => redact_url(&text),
                    Kind::Secret if !text.is_empty() => "***".to_string(),
                    _ => crate::redact::text(&text),
                };
                Shown {
                    key: k.name,
                    value,
                    source,
                }
            })
            .collect()
    }
}

/// The environment as text. std::env::vars() panics on a value that is not UTF-8; a variable
/// opsh reads must be UTF-8 (an error names it), any other is none of opsh's business.
fn environment() -> Result<BTreeMap<String, String>, Error> {
    let mut env = BTreeMap::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        let read_by_opsh = name.starts_with("OPSH_") || KEYS.iter().any(|k| k.env.contains(&name));
        match value.to_str() {
            Some(value) => {
                env.insert(name.to_string(), value.to_string());
            }
            None if read_by_opsh => {
                return Err(Error::Config {
                    message: format!(
                        "environment variable {name} is not valid UTF-8 ({} bytes; the value is not shown)",
                        value.len()
                    ),
                });
            }
            None => {}
        }
    }
    Ok(env)
}

/// The system-wide configuration file: /etc/opsh/opsh.toml, or under the OPSH_SYSCONFDIR a
/// package built opsh with (build.rs).
pub const SYSTEM_CONFIG: &str = concat!(env!("BUILD_OPSH_SYSCONFDIR"), "/opsh/opsh.toml");

/// The configuration files to read, in rising precedence: `--config FILE` or `$OPSH_CONFIG`
/// alone, else those of /etc/opsh/opsh.toml, ~/.config/opsh/opsh.toml and ./opsh.toml that
/// exist, each overriding the one before (as git reads system, global and local config).
fn config_files(
    overrides: &Overrides,
    env: &BTreeMap<String, String>,
    cwd: &Path,
) -> Result<Vec<PathBuf>, Error> {
    // An explicitly named file must exist; the implicit places are optional.
    let explicit = overrides.config_file.clone().or_else(|| {
        env.get("OPSH_CONFIG")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    });
    if let Some(path) = explicit {
        let path = if path.is_absolute() {
            path
        } else {
            cwd.join(path)
        };
        if path.is_dir() {
            return Err(Error::Config {
                message: format!(
                    "config file {} is a directory; name the opsh.toml inside it",
                    path.display()
                ),
            });
        }
        if !path.exists() {
            return Err(Error::Config {
                message: format!("config file {} does not exist", path.display()),
            });
        }
        return Ok(vec![path]);
    }
    let mut files: Vec<PathBuf> = Vec::new();
    for path in [
        PathBuf::from(SYSTEM_CONFIG),
        expand_home("~/.config/opsh/opsh.toml"),
        cwd.join("opsh.toml"),
    ] {
        // The same file reached twice (opsh run from ~/.config/opsh) is read once.
        let same = |a: &Path| std::fs::canonicalize(a).ok() == std::fs::canonicalize(&path).ok();
        if path.is_file() && !files.iter().any(|f| same(f)) {
            files.push(path);
        }
    }
    Ok(files)
}

/// The deployment's .env: compose.env_file as the environment or a configuration file sets it
/// (relative to that file), else `.env` in the working directory, where Compose reads it.
fn dotenv_file(
    values: &BTreeMap<&'static str, Value>,
    env: &BTreeMap<String, String>,
    cwd: &Path,
) -> PathBuf {
    let var = format!(
        "OPSH_{}",
        key::COMPOSE_ENV_FILE
            .name()
            .replace('.', "_")
            .to_uppercase()
    );
    if let Some(path) = env.get(&var).filter(|s| !s.is_empty()) {
        return cwd.join(expand_home(path));
    }
    let value = &values[key::COMPOSE_ENV_FILE.name()];
    let path = expand_home(&value.text);
    match &value.source {
        Source::File(file) => file.parent().unwrap_or(cwd).join(path),
        _ => cwd.join(path),
    }
}

/// A relative path in a configuration file or a .env is relative to that file's directory, so
/// /etc/opsh/opsh.toml's `backup.dir = "backups"` means /etc/opsh/backups from any working
/// directory (cron starts in $HOME). Defaults and the environment stay relative to the working
/// directory.
fn resolve_relative_paths(values: &mut BTreeMap<&'static str, Value>) {
    for k in KEYS {
        if !matches!(k.kind, Kind::Path | Kind::PathList) {
            continue;
        }
        let Some(value) = values.get_mut(k.name) else {
            continue;
        };
        let base = match &value.source {
            Source::File(p) | Source::DotEnv(p) | Source::Target(p, _) => p.parent(),
            _ => None,
        };
        let Some(base) = base else { continue };
        let resolve = |part: &str| -> String {
            if part.is_empty() || part.starts_with('/') || part.starts_with('~') {
                part.to_string()
            } else {
                base.join(part.strip_prefix("./").unwrap_or(part))
                    .display()
                    .to_string()
            }
        };
        value.text = match k.kind {
            Kind::PathList => value
                .text
                .split(':')
                .map(resolve)
                .collect::<Vec<_>>()
                .join(":"),
            _ => resolve(&value.text),
        };
    }
}

/// `OPSH_` variables that are not settings: opsh's own, and the test tools' (`OPSH_TEST_…`).
const OTHER_OPSH_VARS: &[&str] = &[
    "OPSH_CONFIG",
    "OPSH_LOG",
    "OPSH_KEEP_SERVICES",
    "OPSH_SERVICES_NO_DOCKER",
    "OPSH_TARGET",
];

/// The `OPSH_<KEY>` name of a setting.
fn opsh_var(key: &Key) -> String {
    format!("OPSH_{}", key.name.replace('.', "_").to_uppercase())
}

/// A misspelt `OPSH_` variable would be ignored without a word, and the default used instead:
/// warn, with the closest name.
fn warn_unknown_vars(vars: &BTreeMap<String, String>, place: &str) {
    let known: Vec<String> = KEYS
        .iter()
        .map(opsh_var)
        .chain(OTHER_OPSH_VARS.iter().map(|v| v.to_string()))
        .collect();
    for (name, value) in vars {
        // Empty counts as unset, for known names too.
        if value.is_empty()
            || !name.starts_with("OPSH_")
            || name.starts_with("OPSH_TEST_")
            || name.starts_with("OPSH_DEMO_") // make demo's (tools/demo)
            || known.iter().any(|k| k == name)
        {
            continue;
        }
        // Compared without the common prefix, which would make every name look alike.
        let hint = crate::suggest::closest(
            &name["OPSH_".len()..],
            known.iter().map(|k| &k["OPSH_".len()..]),
        )
        .map(|s| format!(" (did you mean OPSH_{s}?)"))
        .unwrap_or_default();
        tracing::warn!("unknown variable {name} in {place} is ignored{hint}");
    }
}

/// Applies `VAR=value` pairs: the deployment's names (DATABASE_URL, …) and `OPSH_<KEY>`.
fn apply_env(
    values: &mut BTreeMap<&'static str, Value>,
    vars: &BTreeMap<String, String>,
    source: impl Fn(&str) -> Source,
) {
    for key in KEYS {
        let opsh_var = opsh_var(key);
        // OPSH_ names are more specific than the deployment's shared ones, so they win.
        for var in key
            .env
            .iter()
            .copied()
            .chain(std::iter::once(opsh_var.as_str()))
        {
            if let Some(text) = vars.get(var).filter(|s| !s.is_empty()) {
                values.insert(
                    key.name,
                    Value {
                        text: text.clone(),
                        source: source(var),
                    },
                );
            }
        }
    }
}

/// Refuses a configuration file that others could have changed (see [`crate::trust`]): it can
/// send opsh, with the operator's credentials, to another database, other site scripts or
/// another backup directory. Only regular files: `/dev/null` holds nothing anyone could set.
fn trusted(path: &Path, what: &str) -> Result<(), Error> {
    if !path.is_file() {
        return Ok(());
    }
    crate::trust::check(path).map_err(|r| {
        let why = match r.why.strip_prefix(&format!("file {} ", path.display())) {
            Some(rest) => format!("it {rest}"),
            None => r.why,
        };
        Error::Config {
            message: format!(
                "refusing {what} {}: {why}; run `{}` to fix it",
                path.display(),
                r.fix
            ),
        }
    })
}

/// Warns when a file that holds a secret (a URL with a password, an API key, a `…PASSWORD=`
/// line) may be read by every user of the machine.
fn warn_if_secret_is_readable(path: &Path, text: &str) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if meta.mode() & 0o004 == 0 || !holds_secret(text) {
        return;
    }
    tracing::warn!(
        "{} holds a secret and is readable by others (mode {:o}); run `chmod o-r {}`",
        path.display(),
        meta.mode() & 0o7777,
        path.display()
    );
}

fn holds_secret(text: &str) -> bool {
    const NAMES: &[&str] = &["PASSWORD", "PASSWD", "SECRET", "TOKEN", "API_KEY", "APIKEY"];
    text.lines().any(|line| {
        let line = line.trim();
        if line.starts_with('#') {
            return false;
        }
        if crate::redact::text(line) != line {
            return true;
        }
        let Some((name, value)) = line.split_once('=') else {
            return false;
        };
        let (name, value) = (
            name.trim().to_uppercase(),
            value.trim().trim_matches(['"', '\'']),
        );
        !value.is_empty() && NAMES.iter().any(|n| name.contains(n))
    })
}

/// Reads `.env`. An error names the file and line but never quotes the line: it may hold a
/// secret (a .env file usually does).
fn read_dotenv(path: &Path) -> Result<BTreeMap<String, String>, Error> {
    let text = read_text(path, "file")?;
    let mut pairs = BTreeMap::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        let (k, v) = item.map_err(|e| Error::Config {
            message: match &e {
                dotenvy::Error::LineParse(line, index) => {
                    let at = text
                        .find(line.as_str())
                        .map(|offset| format!(":{}", line_of(&text, offset)))
                        .unwrap_or_default();
                    format!(
                        "{}{at}: cannot parse this line (at character {index}); expected KEY=value (the line is not shown: it may hold a secret)",
                        path.display()
                    )
                }
                other => format!("{}: {}", path.display(), crate::redact::text(&other.to_string())),
            },
        })?;
        pairs.insert(k, v);
    }
    Ok(pairs)
}

/// A configuration file's text: UTF-8 (a leading byte-order mark skipped); bad bytes are
/// reported by line and column.
fn read_text(path: &Path, what: &str) -> Result<String, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::Config {
        message: format!("cannot read {what} {}: {e}", path.display()),
    })?;
    crate::text::decode(bytes).map_err(|why| Error::Config {
        message: format!("{what} {} is {why}", path.display()),
    })
}

/// A URL as it may be shown: password masked, or `<unparseable, N chars>` (see [`crate::redact`]).
pub fn redact_url(text: &str) -> String {
    crate::redact::url(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redact_url("redis://localhost:6379/0"),
            "redis://localhost:6379/0"
        );
    }

    #[test]
    fn toml_errors_name_line_and_key() {
        let err = parse_toml(Path::new("opsh.toml"), "[postgres]\nurl = 5\n")
            .map(drop)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "opsh.toml:2: key `postgres.url` must be a string, not integer"
        );
        let err = parse_toml(
            Path::new("opsh.toml"),
            "[postgres]\nurl = \"x\"\n[redis]\nurl = 6\n",
        )
        .map(drop)
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "opsh.toml:4: key `redis.url` must be a string, not integer"
        );
        let err = parse_toml(Path::new("opsh.toml"), "[postgres]\nurll = \"x\"\n")
            .map(drop)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "opsh.toml:2: unknown key `postgres.urll` (did you mean `postgres.url`?)"
        );
    }

    #[test]
    fn pairs_are_written_as_toml_tables_and_kept_as_json() {
        let (values, _) = parse_toml(
            Path::new("opsh.toml"),
            "[[integrity.pairs]]\nname = \"docs\"\ntable = \"documents\"\nid_column = \"point_id\"\ncollection = \"docs\"\n",
        )
        .unwrap();
        let json = &values
            .iter()
            .find(|(k, _)| *k == "integrity.pairs")
            .unwrap()
            .1;
        let pairs: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(pairs[0]["table"], "documents");
        assert_eq!(pairs[0]["id_column"], "point_id");
        let err = parse_toml(Path::new("opsh.toml"), "[integrity]\npairs = \"[{\"\n")
            .map(drop)
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("opsh.toml:2: key `integrity.pairs`: not valid JSON"),
            "{err}"
        );
    }

    #[test]
    fn a_choice_takes_only_its_words() {
        let ok = parse_toml(
            Path::new("opsh.toml"),
            "[backup]\npg_tools = \"container\"\n",
        );
        assert!(ok.is_ok());
        let err = parse_toml(Path::new("opsh.toml"), "[backup]\npg_tools = \"podman\"\n")
            .map(drop)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "opsh.toml:2: key `backup.pg_tools`: `podman` is not one of `auto`, `host`, `container`"
        );
    }
}
