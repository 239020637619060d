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
    /// A number of at least 0, such as 10.0 (a cost limit in USD).
    Number,
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
    Text => Kind::Text | Kind::Url | Kind::Secret | Kind::Choice(_) | Kind::Json | Kind::Path | Kind::Number,
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
    /// Qdrant as the deployment's .env names it: the gRPC address, or (on port 6333, as its
    /// Python services use it) the REST one, gRPC then being the same host on 6334.
    QDRANT_URL: Text = "qdrant.url", env ["QDRANT_URL"], default "http://localhost:6334", kind Kind::Url;
    /// The gRPC address, when it is not what qdrant.url implies (see qdrant.url).
    QDRANT_GRPC_URL: Text = "qdrant.grpc_url", env [], default "", kind Kind::Url;
    /// The REST address (snapshot transfers); empty: qdrant.url if it is on 6333, else the
    /// gRPC address's host on 6333.
    QDRANT_REST_URL: Text = "qdrant.rest_url", env [], default "", kind Kind::Url;
    QDRANT_API_KEY: Text = "qdrant.api_key", env ["QDRANT_API_KEY"], default "", kind Kind::Secret;
    QDRANT_CONTENT_COLLECTION: Text = "qdrant.content_collection", env [], default "youtube_content", kind Kind::Text;
    QDRANT_SUMMARIES_COLLECTION: Text = "qdrant.summaries_collection", env [], default "youtube_summaries", kind Kind::Text;
    QDRANT_VECTOR_SIZE: Int = "qdrant.vector_size", env [], default "1024", kind Kind::Int { min: 1 };
    QDRANT_DISTANCE: Text = "qdrant.distance", env [], default "Cosine", kind Kind::Text;
    /// A PEM file of CA certificates an `https://` Qdrant's certificate may be signed by
    /// (besides the system's), for gRPC and REST alike.
    QDRANT_CA_FILE: Text = "qdrant.ca_file", env [], default "", kind Kind::Path;
    /// Ranges of the id space a whole-collection scroll (check-data, qdrant::ids) reads at
    /// once, each on a Qdrant core of its own; 0: as many as this machine's cores (2 to 8).
    /// In a Qdrant cluster, the REST URL of a peer, by peer id or by the host of its p2p URI
    /// (`{"qdrant-2": "https://10.0.0.2:6333"}`); a peer not named is reached at its p2p host
    /// with qdrant.rest_url's scheme and port.
    QDRANT_PEERS: Text = "qdrant.peers", env [], default "", kind Kind::Json;
    QDRANT_SCROLL_PARTITIONS: Int = "qdrant.scroll_partitions", env [], default "0", kind Kind::Int { min: 0 };
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
    /// A PEM file of CA certificates a `rediss://` server's certificate may be signed by
    /// (besides the system's), e.g. a site's own CA.
    REDIS_CA_FILE: Text = "redis.ca_file", env [], default "", kind Kind::Path;
    /// A client certificate (PEM) for a `rediss://` server that asks for one
    /// (`tls-auth-clients`); with redis.key_file.
    REDIS_CERT_FILE: Text = "redis.cert_file", env [], default "", kind Kind::Path;
    /// The private key (PEM) of redis.cert_file.
    REDIS_KEY_FILE: Text = "redis.key_file", env [], default "", kind Kind::Path;
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
    /// Where the temp dirs are emptied: "host", on the file system opsh runs on; "containers",
    /// inside the Compose project's containers that have them, through the Docker Engine (an
    /// exec in a running one; for a stopped one, a throwaway container of its image with its
    /// volumes); "auto": host, unless opsh runs in a container (/.dockerenv) and the dir is not
    /// there.
    FILES_TEMP_IN: Text = "files.temp_in", env [], default "auto", kind Kind::Choice(&["auto", "host", "containers"]);
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
    /// How text output marks a status: `auto` the guide's emoji on a terminal and words (OK,
    /// WARNING, …) in pipes and files, `always` emoji everywhere, `never` words everywhere
    /// (the flag --emoji sets it for one run).
    OUTPUT_EMOJI: Text = "output.emoji", env [], default "auto", kind Kind::Choice(&["auto", "always", "never"]);
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
    /// jobs::purge and the purge-jobs procedure delete finished jobs older than this (the
    /// deployment's nightly retention: failed jobs after 7 days).
    JOBS_PURGE_AFTER: Dur = "jobs.purge_after", env [], default "7d", kind Kind::Duration;
    /// The job type integrity::requeue queues for content whose vectors are missing (the
    /// vectorize workers rebuild an item's chunks and summary from a pending job of this type).
    /// The STT workers' cost limits in USD (their own environment names; the paid fallback
    /// is OpenAI's API at $0.006 a minute): per UTC day, per month, per video, and the
    /// estimate up to which a run is approved without asking.
    STT_DAILY_COST_LIMIT: Text = "stt.daily_cost_limit", env ["STT_DAILY_COST_LIMIT"], default "10.0", kind Kind::Number;
    STT_MONTHLY_COST_LIMIT: Text = "stt.monthly_cost_limit", env ["STT_MONTHLY_COST_LIMIT"], default "100.0", kind Kind::Number;
    STT_SINGLE_VIDEO_LIMIT: Text = "stt.single_video_limit", env ["STT_SINGLE_VIDEO_LIMIT"], default "2.0", kind Kind::Number;
    STT_AUTO_APPROVE_THRESHOLD: Text = "stt.auto_approve_threshold", env ["STT_AUTO_APPROVE_THRESHOLD"], default "0.10", kind Kind::Number;
    /// How long an STT worker waits for an approval before it fails the job (3600 s).
    STT_APPROVAL_TIMEOUT: Dur = "stt.approval_timeout", env [], default "1h", kind Kind::Duration;
    /// The unattended runs (`[[schedule]]` tables: procedure, cron, arguments, target, name,
    /// enabled), beside the defaults daily-integrity-check at 02:00 and purge-jobs at 03:30;
    /// `opsh schedule` lists them, `opsh schedule install` writes them for cron or systemd.
    SCHEDULE: Text = "schedule", env [], default "", kind Kind::Json;
    /// Where scheduled runs log (--log-file) and write their report as Prometheus metrics for
    /// node_exporter's textfile collector (--format prometheus --output DIR/opsh_NAME.prom).
    UNATTENDED_LOG_FILE: Text = "unattended.log_file", env [], default "/var/log/opsh/opsh.log", kind Kind::Path;
    UNATTENDED_METRICS_DIR: Text = "unattended.metrics_dir", env [], default "/var/lib/prometheus/node-exporter", kind Kind::Path;
    JOBS_REQUEUE_TYPE: Text = "jobs.requeue_type", env [], default "vectorize", kind Kind::Text;
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

/// The built-in default of a setting named as data, whatever the configuration says (the
/// README's procedure table shows these).
pub fn built_in_default(name: &str) -> Option<&'static str> {
    find(name).map(|k| k.default)
}

pub(super) fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Int { .. } => "an integer",
        Kind::Duration | Kind::OptionalDuration => "a duration such as \"30s\" or \"1h\"",
        Kind::List | Kind::PathList => "a list of strings",
        Kind::Number => "a number",
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
        Kind::Number => match text.trim().parse::<f64>() {
            Ok(n) if n.is_finite() && n >= 0.0 => Ok(()),
            _ => Err(format!("`{text}` is not a number of 0 or more")),
        },
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
