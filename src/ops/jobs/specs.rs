//! The signatures, descriptions and examples of the `jobs::` functions.

use crate::config::key;

use crate::ops::Target;
use crate::ops::error::OpError;
use crate::ops::spec::{Default, Example, Kind, Opt, Param, Spec};

/// The configured stuck threshold of a procedure (`jobs.stuck_after.<name>`).
pub(super) fn stuck_after(target: &Target, name: &str) -> Result<String, OpError> {
    let Some(key) = key::stuck_after(name) else {
        return Err(OpError::invalid(format!(
            "no setting `jobs.stuck_after.{name}`; known: check_data, safe_start, reset_stuck_jobs, check_jobs"
        )));
    };
    Ok(target
        .settings
        .text_by_name(key.name())
        .unwrap_or_default()
        .to_string())
}

pub(super) const JOB_TYPE: Opt = Opt::new(
    "job_type",
    Kind::Strings,
    Default::None,
    "only these job types (one or an array)",
);
pub(super) const STUCK_AFTER: Default =
    Default::Setting(key::JOBS_STUCK_AFTER_RESET_STUCK_JOBS.name());

pub(super) static COUNTS: Spec = Spec {
    module: "jobs",
    name: "counts",
    params: &[],
    options: &[],
    returns: "Map",
    doc: "Job counts: total, by_status (pending, processing, completed, failed, always present) and \
          by_type (job_type → status → count).",
    examples: &[Example::new(
        "jobs::counts().by_status",
        r#"{"completed": 2, "failed": 1, "pending": 2, "processing": 3}"#,
    )],
};

pub(super) static LIST: Spec = Spec {
    module: "jobs",
    name: "list",
    params: &[],
    options: &[
        Opt::new(
            "status",
            Kind::Str,
            Default::None,
            "only jobs in this status",
        ),
        JOB_TYPE,
        Opt::new(
            "older_than",
            Kind::Duration,
            Default::None,
            "last activity at least this long ago",
        ),
        Opt::new(
            "limit",
            Kind::Int,
            Default::Value("100"),
            "at most this many jobs",
        ),
    ],
    returns: "Array",
    doc: "Jobs, oldest activity first. Each job: id, job_type, content_id, status, priority, \
          retry_count, error_message, created_at, started_at, completed_at, updated_at, age_seconds.",
    examples: &[Example::new(
        r#"jobs::list(#{status: "pending"}).map(|j| j.id)"#,
        "[4, 5]",
    )],
};

pub(super) static STUCK: Spec = Spec {
    module: "jobs",
    name: "stuck",
    params: &[],
    options: &[
        Opt::new(
            "older_than",
            Kind::Duration,
            STUCK_AFTER,
            "processing with no sign of life for this long",
        ),
        JOB_TYPE,
        Opt::new(
            "limit",
            Kind::Int,
            Default::Value("10000"),
            "at most this many jobs",
        ),
    ],
    returns: "Array",
    doc: "Jobs in 'processing' whose started_at (or a newer updated_at) is older than older_than, \
          oldest first.",
    examples: &[Example::new(
        r#"jobs::stuck(#{older_than: "1h"}).map(|j| j.id)"#,
        "[2, 1]",
    )],
};

pub(super) static RESET_STUCK: Spec = Spec {
    module: "jobs",
    name: "reset_stuck",
    params: &[],
    options: &[
        Opt::new(
            "older_than",
            Kind::Duration,
            STUCK_AFTER,
            "processing with no sign of life for this long",
        ),
        Opt::new(
            "max_retries",
            Kind::Int,
            Default::Setting(key::JOBS_MAX_RETRIES.name()),
            "jobs already retried this often go to 'failed'",
        ),
        Opt::new(
            "reason",
            Kind::Str,
            Default::None,
            "the error_message written (default names the threshold)",
        ),
        JOB_TYPE,
    ],
    returns: "Map",
    doc: "Resets stuck jobs in one UPDATE that re-checks its own predicate: status back to \
          'pending', started_at cleared, retry_count + 1, error_message = reason. Jobs whose \
          retry_count reached max_retries go to 'failed' instead, so a poison job stops looping. \
          On a database without retry_count (the deployment's init.sql, never migrated) every \
          stuck job goes to 'pending' uncounted and retries_counted is false; max_retries \
          applies once `opsh migrate` adds the column. Returns reset, failed, ids, failed_ids, \
          retries_counted, dry_run; with --dry-run nothing changes and the same fields say what \
          would.",
    examples: &[
        Example::new(
            r#"let r = jobs::reset_stuck(#{older_than: "1h"}); [r.reset, r.failed, r.ids, r.failed_ids]"#,
            "[1, 1, [1], [2]]",
        ),
        Example::new(
            r#"jobs::reset_stuck(#{older_than: "1h", max_retries: 10}).ids"#,
            "[1, 2]",
        ),
    ],
};

pub(super) static RESET_PROCESSING: Spec = Spec {
    module: "jobs",
    name: "reset_processing",
    params: &[],
    options: &[
        Opt::new(
            "reason",
            Kind::Str,
            Default::Value("Service stopped during processing"),
            "the error_message written",
        ),
        JOB_TYPE,
    ],
    returns: "Map",
    doc: "safe-stop's step: every 'processing' job back to 'pending' (retry_count unchanged; a \
          deliberate stop is not the job's fault). Asks for confirmation (--yes answers it); with \
          --dry-run nothing changes.",
    examples: &[Example::new(
        "let r = jobs::reset_processing(); [r.reset, r.ids]",
        "[3, [1, 2, 3]]",
    )],
};

pub(super) static WAIT_IDLE: Spec = Spec {
    module: "jobs",
    name: "wait_idle",
    params: &[],
    options: &[
        Opt::new(
            "timeout",
            Kind::Duration,
            Default::Value("30s"),
            "give up after this long",
        ),
        Opt::new(
            "poll",
            Kind::Duration,
            Default::Value("2s"),
            "how often to look",
        ),
        JOB_TYPE,
    ],
    returns: "Map",
    doc: "Waits until no job is processing (of job_type, when given) or timeout passes. Returns \
          idle, waited_seconds and still_running (the jobs).",
    examples: &[
        Example::new(
            r#"jobs::wait_idle(#{timeout: "1s", poll: "100ms", job_type: "no-such-type"}).idle"#,
            "true",
        ),
        Example::new(
            r#"let w = jobs::wait_idle(#{timeout: "200ms", poll: "50ms"}); [w.idle, w.still_running.len()]"#,
            "[false, 3]",
        ),
    ],
};

pub(super) static RETRY_FAILED: Spec = Spec {
    module: "jobs",
    name: "retry_failed",
    params: &[],
    options: &[
        JOB_TYPE,
        Opt::new(
            "older_than",
            Kind::Duration,
            Default::None,
            "failed at least this long ago",
        ),
        Opt::new(
            "limit",
            Kind::Int,
            Default::Value("100"),
            "at most this many jobs",
        ),
    ],
    returns: "Map",
    doc: "Puts failed jobs back to 'pending', oldest failures first. Asks for confirmation (--yes \
          answers it). Returns retried, ids, dry_run; with --dry-run nothing changes.",
    examples: &[Example::new("jobs::retry_failed().ids", "[8]")],
};

pub(super) static STUCK_AFTER_SPEC: Spec = Spec {
    module: "jobs",
    name: "stuck_after",
    params: &[Param::new(
        "procedure",
        Kind::Str,
        "check_data, safe_start, reset_stuck_jobs or check_jobs",
    )],
    options: &[],
    returns: "String",
    doc: "The configured stuck threshold of a procedure, from the setting jobs.stuck_after.<procedure>.",
    examples: &[Example::new(
        r#"jobs::stuck_after("check_data")"#,
        r#""1d""#,
    )],
};
