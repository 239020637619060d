//! Every setting, written once: its dotted key, the environment variables that set it (the
//! deployment's own names first; `OPSH_<KEY>` always works too), its default and its kind. Code
//! reads a setting through its typed constant (`settings.duration(key::LOGS_RETENTION)`), so a
//! misspelt key does not compile and a duration cannot be read as text by mistake.

use std::path::PathBuf;

use crate::duration;

/// One configurable value as the loader sees it.
pub(super) struct Key {
    pub(super) name: &'static str,
    pub(super) env: &'static [&'static str],
    pub(super) default: &'static str,
    pub(super) kind: Kind,
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Kind {
    Text,
    /// A URL whose password is redacted whenever it is shown.
    Url,
    Secret,
    Duration,
    /// Empty means "none".
    OptionalDuration,
    /// An integer of at least `min`.
    Int {
        min: i64,
    },
    /// A `:`-separated list (a TOML array in opsh.toml).
    List,
    /// A path: relative in a configuration file or .env, relative to that file's directory.
    Path,
    /// A `:`-separated list of paths, each resolved as a [`Kind::Path`].
    PathList,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// A JSON document; in opsh.toml the same written as TOML (e.g. `[[integrity.pairs]]`
    /// tables), kept as its JSON text.
    Json,
}

/// A setting read as text: names, URLs, secrets, choices, JSON.
#[derive(Clone, Copy, Debug)]
pub struct Text(&'static str);
/// A setting read as a duration (validated when loaded, never empty).
#[derive(Clone, Copy, Debug)]
pub struct Dur(&'static str);
/// A duration that may be empty ("none").
#[derive(Clone, Copy, Debug)]
pub struct OptDur(&'static str);
/// A setting read as an integer (validated when loaded).
#[derive(Clone, Copy, Debug)]
pub struct Int(&'static str);
/// A `:`-separated list.
#[derive(Clone, Copy, Debug)]
pub struct List(&'static str);

macro_rules! key_types {
    ($($ty:ident => $kind:pat,)*) => {$(
        impl $ty {
            /// The dotted name, as opsh.toml and `opsh config` spell it.
            pub const fn name(self) -> &'static str {
                self.0
            }
            const fn accepts(kind: Kind) -> bool {
                matches!(kind, $kind)
            }
        }
    )*};
}

key_types! {
    Text => Kind::Text | Kind::Url | Kind::Secret | Kind::Choice(_) | Kind::Json | Kind::Path,
    Dur => Kind::Duration,
    OptDur => Kind::OptionalDuration,
    Int => Kind::Int { .. },
    List => Kind::List | Kind::PathList,
}

/// Defines each key's typed constant and its row of [`KEYS`]; a constant whose type does not
/// fit its kind fails to compile.
macro_rules! settings {
    ($($(#[doc = $doc:literal])* $konst:ident: $ty:ident = $name:literal, env [$($env:literal),*], default $default:literal, kind $kind:expr;)*) => {
        $(
            $(#[doc = $doc])*
            pub const $konst: $ty = {
                assert!($ty::accepts($kind), concat!("the kind of ", $name, " does not fit its type"));
                $ty($name)
            };
        )*
        pub(super) const KEYS: &[Key] = &[$(Key {
            name: $name,
            env: &[$($env),*],
            default: $default,
            kind: $kind,
        }),*];
    };
}

settings! {
    POSTGRES_URL: Text = "postgres.url", env ["DATABASE_URL"], default "postgres://youtube_user:youtube_pass@localhost:5432/youtube_agent", kind Kind::Url;
    POSTGRES_QUERY_TIMEOUT: Dur = "postgres.query_timeout", env [], default "30s", kind Kind::Duration;
    POSTGRES_QUERY_ROLE: Text = "postgres.query_role", env [], default "", kind Kind::Text;
    QDRANT_URL: Text = "qdrant.url", env ["QDRANT_URL"], default "http://localhost:6334", kind Kind::Url;
    QDRANT_REST_URL: Text = "qdrant.rest_url", env [], default "http://localhost:6333", kind Kind::Url;
    QDRANT_API_KEY: Text = "qdrant.api_key", env ["QDRANT_API_KEY"], default "", kind Kind::Secret;
    QDRANT_CONTENT_COLLECTION: Text = "qdrant.content_collection", env [], default "youtube_content", kind Kind::Text;
    QDRANT_SUMMARIES_COLLECTION: Text = "qdrant.summaries_collection", env [], default "youtube_summaries", kind Kind::Text;
    QDRANT_VECTOR_SIZE: Int = "qdrant.vector_size", env [], default "1024", kind Kind::Int { min: 1 };
    QDRANT_DISTANCE: Text = "qdrant.distance", env [], default "Cosine", kind Kind::Text;
    INTEGRITY_ORPHAN_GRACE: Dur = "integrity.orphan_grace", env [], default "10m", kind Kind::Duration;
    INTEGRITY_PAIRS: Text = "integrity.pairs", env [], default "", kind Kind::Json;
    /// The deletion budget of every bulk delete (src/ops/budget.rs): at most the larger of
    /// max_count and max_percent of the collection, table or db, unless max_delete=N says more.
    DELETE_MAX_COUNT: Int = "delete.max_count", env [], default "1000", kind Kind::Int { min: 0 };
    DELETE_MAX_PERCENT: Int = "delete.max_percent", env [], default "1", kind Kind::Int { min: 0 };
    /// A Qdrant snapshot of the collection is taken before a delete of more points than this.
    DELETE_SNAPSHOT_ABOVE: Int = "delete.snapshot_above", env [], default "100", kind Kind::Int { min: 0 };
    /// Where each bulk delete writes the ids it deleted (0600 files in a 0700 folder), and how
    /// long they are kept.
    DELETE_IDS_DIR: Text = "delete.ids_dir", env [], default "~/.local/state/opsh/deleted", kind Kind::Path;
    DELETE_IDS_KEEP: Dur = "delete.ids_keep", env [], default "30d", kind Kind::Duration;
    REDIS_URL: Text = "redis.url", env ["REDIS_URL"], default "redis://localhost:6379/0", kind Kind::Url;
    BACKUP_DIR: Text = "backup.dir", env [], default "./backups", kind Kind::Path;
    BACKUP_KEEP_LAST: Int = "backup.keep_last", env [], default "7", kind Kind::Int { min: 0 };
    BACKUP_KEEP_DAYS: Int = "backup.keep_days", env [], default "30", kind Kind::Int { min: 0 };
    BACKUP_PG_TOOLS: Text = "backup.pg_tools", env [], default "auto", kind Kind::Choice(&["auto", "host", "container"]);
    LOGS_DIRS: List = "logs.dirs", env [], default "./logs", kind Kind::PathList;
    LOGS_RETENTION: Dur = "logs.retention", env [], default "7d", kind Kind::Duration;
    DOCKER_HOST: Text = "docker.host", env ["DOCKER_HOST"], default "", kind Kind::Url;
    DOCKER_TLS_VERIFY: Text = "docker.tls_verify", env ["DOCKER_TLS_VERIFY"], default "", kind Kind::Text;
    DOCKER_CERT_PATH: Text = "docker.cert_path", env ["DOCKER_CERT_PATH"], default "", kind Kind::Path;
    DOCKER_STOP_TIMEOUT: Dur = "docker.stop_timeout", env [], default "10s", kind Kind::Duration;
    /// Services (or container names) scripts may run commands in with docker::exec; "*"
    /// for all. Empty: none, as DESIGN says scripts get no shell unless configured.
    DOCKER_ALLOW_EXEC: List = "docker.allow_exec", env [], default "", kind Kind::List;
    COMPOSE_PROJECT: Text = "compose.project", env ["COMPOSE_PROJECT_NAME"], default "youtube_agent", kind Kind::Text;
    COMPOSE_FILE: Text = "compose.file", env ["COMPOSE_FILE"], default "docker-compose.yml", kind Kind::Path;
    /// The deployment's .env (Compose's own, beside its compose file); relative in a
    /// configuration file, relative to that file.
    COMPOSE_ENV_FILE: Text = "compose.env_file", env [], default ".env", kind Kind::Path;
    COMPOSE_POSTGRES_SERVICE: Text = "compose.postgres_service", env [], default "postgres", kind Kind::Text;
    COMPOSE_REDIS_SERVICE: Text = "compose.redis_service", env [], default "redis", kind Kind::Text;
    FILES_TEMP_DIRS: List = "files.temp_dirs", env [], default "/tmp/shared_audio:/tmp/youtube_downloads:/tmp/whisper_cache:/app/data/temp", kind Kind::List;
    HEALTH_URLS: Text = "health.urls", env [], default "agent-service=http://localhost:8000/health,whisper-server=http://localhost:8082/health,embedding-server=http://localhost:8083/health", kind Kind::Text;
    /// A PEM file of CA certificates https health URLs may be signed by (besides the
    /// system's), e.g. a site's own CA.
    HEALTH_CA_FILE: Text = "health.ca_file", env [], default "", kind Kind::Path;
    HEALTH_TIMEOUT: Dur = "health.timeout", env [], default "5s", kind Kind::Duration;
    SAFE_STOP_GRACE: Dur = "safe_stop.grace", env [], default "30s", kind Kind::Duration;
    SAFE_STOP_STOP_TIMEOUT: Dur = "safe_stop.stop_timeout", env [], default "60s", kind Kind::Duration;
    SAFE_STOP_STOP_LAST: Text = "safe_stop.stop_last", env [], default "postgres,redis,qdrant", kind Kind::Text;
    SAFE_START_WAIT: Dur = "safe_start.wait", env [], default "2m", kind Kind::Duration;
    SCRIPTS_DIRS: List = "scripts.dirs", env [], default "./ops:~/.config/opsh/scripts", kind Kind::PathList;
    /// 0 would let a runaway script run for ever (Rhai reads 0 as "no limit").
    LIMITS_MAX_OPERATIONS: Int = "limits.max_operations", env [], default "50000000", kind Kind::Int { min: 1 };
    RUN_TIMEOUT: OptDur = "run.timeout", env [], default "", kind Kind::OptionalDuration;
    AUDIT_FILE: Text = "audit.file", env [], default "~/.local/state/opsh/audit.jsonl", kind Kind::Path;
    JOBS_MAX_RETRIES: Int = "jobs.max_retries", env [], default "3", kind Kind::Int { min: 0 };
    JOBS_STUCK_AFTER_CHECK_DATA: Dur = "jobs.stuck_after.check_data", env [], default "1d", kind Kind::Duration;
    JOBS_STUCK_AFTER_SAFE_START: Dur = "jobs.stuck_after.safe_start", env [], default "1h", kind Kind::Duration;
    JOBS_STUCK_AFTER_RESET_STUCK_JOBS: Dur = "jobs.stuck_after.reset_stuck_jobs", env [], default "1h", kind Kind::Duration;
    /// How the REPL shows rows: a table, or expanded (one record per block, as psql's `\x`;
    /// `:x` toggles it).
    OUTPUT_RECORDS: Text = "output.records", env [], default "table", kind Kind::Choice(&["table", "expanded"]);
    /// The time zone tables show timestamps in: the machine's local one, or utc.
    OUTPUT_TIMEZONE: Text = "output.timezone", env [], default "local", kind Kind::Choice(&["local", "utc"]);
    /// How often `opsh top` reads the stack again.
    TOP_REFRESH: Dur = "top.refresh", env [], default "2s", kind Kind::Duration;
    /// How long `opsh top` waits for one backend's answer before its pane says it timed out.
    TOP_TIMEOUT: Dur = "top.timeout", env [], default "5s", kind Kind::Duration;
    JOBS_STUCK_AFTER_CHECK_JOBS: Dur = "jobs.stuck_after.check_jobs", env [], default "1h", kind Kind::Duration;
}

/// The stuck threshold of a procedure (`jobs.stuck_after.<name>`), if it has one.
pub fn stuck_after(procedure: &str) -> Option<Dur> {
    [
        JOBS_STUCK_AFTER_CHECK_DATA,
        JOBS_STUCK_AFTER_SAFE_START,
        JOBS_STUCK_AFTER_RESET_STUCK_JOBS,
        JOBS_STUCK_AFTER_CHECK_JOBS,
    ]
    .into_iter()
    .find(|k| k.name().strip_prefix("jobs.stuck_after.") == Some(procedure))
}

/// The key of this dotted name, for names that come as data (a script's declared default
/// `setting jobs.stuck_after.check_jobs`).
pub(super) fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

pub(super) fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Int { .. } => "an integer",
        Kind::Duration | Kind::OptionalDuration => "a duration such as \"30s\" or \"1h\"",
        Kind::List | Kind::PathList => "a list of strings",
        Kind::Json => "TOML tables or a JSON string",
        _ => "a string",
    }
}

/// Checks a value against its key's kind; the error says why (quoting the value, with
/// anything that looks like a secret masked), the caller says where.
pub(super) fn validate(key: &Key, text: &str) -> Result<(), String> {
    check_value(key, text).map_err(|why| crate::redact::text(&why))
}

fn check_value(key: &Key, text: &str) -> Result<(), String> {
    match key.kind {
        Kind::Int { min } => match text.trim().parse::<i64>() {
            Ok(n) if n >= min => Ok(()),
            Ok(n) => Err(match min {
                0 => format!("{n} is negative; it must be 0 or more"),
                1 => format!("{n} must be 1 or more"),
                _ => format!("{n} must be {min} or more"),
            }),
            Err(_) => Err(format!("`{text}` is not an integer")),
        },
        Kind::Duration => duration::parse(text).map(drop),
        Kind::Json if !text.trim().is_empty() => serde_json::from_str::<serde_json::Value>(text)
            .map(drop)
            .map_err(|e| format!("not valid JSON: {e}")),
        Kind::OptionalDuration if !text.is_empty() => duration::parse(text).map(drop),
        Kind::Choice(words) if !words.contains(&text.trim()) => Err(format!(
            "`{text}` is not one of {}",
            words
                .iter()
                .map(|w| format!("`{w}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        _ => Ok(()),
    }
}

/// The sections of opsh.toml: every dotted prefix of a key (`postgres`, `jobs.stuck_after`, …).
pub(super) fn sections() -> Vec<String> {
    let mut sections: Vec<String> = KEYS
        .iter()
        .flat_map(|k| {
            k.name
                .match_indices('.')
                .map(|(i, _)| k.name[..i].to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    sections.sort();
    sections.dedup();
    sections
}

/// `~/` at the start of a path is the user's home.
pub fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => std::path::Path::new(&home).join(rest),
        _ => PathBuf::from(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_defined_once() {
        let mut names: Vec<_> = KEYS.iter().map(|k| k.name).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }

    #[test]
    fn stuck_after_knows_each_procedure_threshold() {
        assert_eq!(
            stuck_after("check_jobs").map(Dur::name),
            Some("jobs.stuck_after.check_jobs")
        );
        assert!(stuck_after("check_jbos").is_none());
    }

    #[test]
    fn a_default_fits_its_kind() {
        for k in KEYS {
            assert_eq!(validate(k, k.default), Ok(()), "{}", k.name);
        }
    }
}
