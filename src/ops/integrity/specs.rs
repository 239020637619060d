//! The `integrity::` functions as data: parameters, options, docs and examples (registered in
//! mod.rs).

use crate::config::key;
use crate::ops::budget::MAX_DELETE;
use crate::ops::spec::{Default, Example, Kind, Opt, Param, Spec};

const PAIRS: Opt = Opt::new(
    "pairs",
    Kind::Array,
    Default::None,
    "the pairs to compare (maps: name, table, id_column, collection, filter?, payload_key?, required?); default: the deployment's two plus setting integrity.pairs",
);
const STUCK_AFTER: Opt = Opt::new(
    "stuck_after",
    Kind::Duration,
    Default::Setting(key::JOBS_STUCK_AFTER_CHECK_DATA.name()),
    "processing this long counts as stuck",
);
/// Written once: the option's default and the page size of a check that `integrity::last` runs.
pub(super) const PAGE_SIZE_DEFAULT: &str = "10000";
const PAGE_SIZE: Opt = Opt::new(
    "page_size",
    Kind::Int,
    Default::Value(PAGE_SIZE_DEFAULT),
    "points per Qdrant scroll request",
);

pub(super) static CHECK: Spec = Spec {
    module: "integrity",
    name: "check",
    params: &[],
    options: &[PAIRS, STUCK_AFTER, PAGE_SIZE],
    returns: "Map",
    doc: "The guide's data-integrity check (make check-data): connections (postgres, qdrant), \
          required tables, collections and their counts, each pair compared (rows, points, \
          matched, missing, orphans, invalid, with samples of 20), content marked vector_stored \
          whose chunks or summary are missing, stuck jobs. status is critical when a connection \
          fails or a required table or collection is missing, warning when anything is out of \
          line, else healthy. A collection made on first use that does not exist while no row \
          expects a point in it (by id: any row; by payload: rows where required holds) is \
          not_created, healthy, and its pairs say so in not_created; the same for a table only a \
          site pair names while its collection holds no point (tables.not_created); issues says what, in words. Ids are compared as Qdrant reads them \
          (an MD5 hex chunk_id matches its hyphenated point). The full lists stay available to \
          integrity::orphans and integrity::fix. Never fails on a backend: a failure is critical. \
          Its outcome is recorded in the audit (op integrity::check; count: orphan, missing and \
          invalid ids; outcome \"ok\", \"1 orphan, 3 missing\" or \"critical: …\"), where \
          opsh top reads the last one.",
    examples: &[
        Example::new(
            "let c = integrity::check(); [c.status, c.pairs.map(|p| [p.name, p.rows, p.points, p.matched, p.missing, p.orphans, p.invalid])]",
            r#"["warning", [["chunks", 4, 4, 2, 1, 2, 1], ["summaries", 3, 2, 1, 1, 1, 0]]]"#,
        ),
        Example::new(
            "let c = integrity::check(); [c.pairs[0].sample_orphans, c.pairs[0].sample_invalid, c.content_missing_vectors, c.jobs.stuck]",
            r#"[["7", "9b2c58c1-1e7f-5a4e-9d8e-0a1b2c3d4e5f"], ["chunk-three"], 1, 0]"#,
        ),
    ],
};

/// The pair a list function reads.
const PAIR: Param = Param::new("pair", Kind::Str, "the pair's name: chunks, summaries, …");

pub(super) static ORPHANS: Spec = Spec {
    module: "integrity",
    name: "orphans",
    params: &[PAIR],
    options: &[],
    returns: "Array",
    doc: "Every orphan point id of a pair from this run's last integrity::check (running one \
          when there was none): points whose row is gone, in Qdrant's order.",
    examples: &[Example::new(
        r#"integrity::orphans("summaries")"#,
        r#"["5c0d4f6e-7a8b-5c9d-8e0f-1a2b3c4d5e6f"]"#,
    )],
};

pub(super) static MISSING: Spec = Spec {
    module: "integrity",
    name: "missing",
    params: &[PAIR],
    options: &[],
    returns: "Array",
    doc: "Every missing id of a pair from this run's last integrity::check: by id, the point ids \
          of rows whose point is absent; by payload, the required rows without a point.",
    examples: &[Example::new(
        r#"integrity::missing("chunks")"#,
        r#"["0f8e2a9c-3b1d-4c5e-8f7a-6b5c4d3e2f10"]"#,
    )],
};

pub(super) static INVALID: Spec = Spec {
    module: "integrity",
    name: "invalid",
    params: &[PAIR],
    options: &[],
    returns: "Array",
    doc: "Every invalid id of a pair from this run's last integrity::check: row ids that are \
          neither an unsigned integer nor a UUID (never matched, never deleted), or points \
          without the payload key.",
    examples: &[Example::new(
        r#"integrity::invalid("chunks")"#,
        r#"["chunk-three"]"#,
    )],
};

pub(super) static FIX: Spec = Spec {
    module: "integrity",
    name: "fix",
    params: &[Param::optional(
        "report",
        Kind::Any,
        "a check's result (ignored: fix always checks afresh, since its decisions must be current)",
    )],
    options: &[
        Opt::new(
            "grace",
            Kind::Duration,
            Default::Setting(key::INTEGRITY_ORPHAN_GRACE.name()),
            "a point must have been seen as an orphan at least this long ago",
        ),
        Opt::new(
            "orphans",
            Kind::Bool,
            Default::Value("true"),
            "delete orphan vectors",
        ),
        Opt::new(
            "jobs",
            Kind::Bool,
            Default::Value("true"),
            "reset stuck jobs",
        ),
        MAX_DELETE,
        Opt::new(
            "requeue",
            Kind::Bool,
            Default::Value("false"),
            "queue content marked vector_stored whose chunks or summary are missing to be vectorized again (integrity::requeue)",
        ),
        JOB_TYPE,
        Opt::new(
            "transcripts",
            Kind::Bool,
            Default::Value("false"),
            "set transcript_available to whether transcripts rows exist",
        ),
        PAIRS,
        STUCK_AFTER,
        PAGE_SIZE,
    ],
    returns: "Map",
    doc: "check-data-fix: checks, then deletes ALL orphan vectors of every compared pair in \
          batches of 1000 (waiting for each) and resets stuck jobs, then checks again (after). \
          What the check could not compare (a missing table or collection) is listed in skipped \
          (what, why) and the rest is fixed; a failed connection fixes nothing (kind \
          unreachable). A point is \
          deleted only when it was first seen as an orphan at least grace ago (recorded in \
          opsh_orphan_candidates) and still has no row when its batch is decided, so a worker \
          writing the point before its row never loses it. Invalid ids are never deleted. The \
          deletion budget comes first, --dry-run included: more points of a collection than \
          the larger of delete.max_count and delete.max_percent, or any by a pair that matched \
          nothing while both sides hold data, and nothing changes: it fails with kind \
          over_budget until max_delete is at least the count (--yes never lifts it). Before \
          deleting more than delete.snapshot_above points it snapshots the collection; the \
          deleted ids go to a 0600 file in delete.ids_dir; the audit names both. Asks for \
          confirmation; with --dry-run nothing changes and would_delete lists every id. \
          Returns dry_run, grace (in words), pairs (orphans, deleted, deferred, deferred_until: \
          when the last deferred one is past its grace, invalid_kept, live, sample_deleted, \
          would_delete, snapshot, ids_file), skipped, deleted, jobs_reset, jobs_failed, \
          requeued (as integrity::requeue returns it; with requeue: true), transcript_flags \
          (cleared, set; with transcripts: true), after.",
    examples: &[Example::new(
        r#"let f = integrity::fix(#{grace: "0s", stuck_after: "1h"}); [f.deleted, f.jobs_reset, f.jobs_failed, f.after.pairs.map(|p| p.orphans)]"#,
        "[3, 1, 1, [0, 0]]",
    )],
};

const JOB_TYPE: Opt = Opt::new(
    "job_type",
    Kind::Str,
    Default::Setting(key::JOBS_REQUEUE_TYPE.name()),
    "the job type that rebuilds an item's vectors",
);

pub(super) static REQUEUE: Spec = Spec {
    module: "integrity",
    name: "requeue",
    params: &[Param::new(
        "content_ids",
        Kind::Array,
        "the content ids to vectorize again",
    )],
    options: &[JOB_TYPE],
    returns: "Map",
    doc: "Rebuilds instead of deleting: sets vector_stored false on the items and inserts one \
          pending job_type job for each, unless one is already pending or processing (the \
          workers rebuild an item's chunks and summary from it; chunk ids are deterministic, so \
          what exists is overwritten and what is missing added). One transaction. Asks for \
          confirmation; with --dry-run nothing changes. Returns dry_run, job_type, content_ids \
          (marked), queued, already_queued, unknown (no such content).",
    examples: &[Example::new(
        "let q = integrity::requeue([3, 1, 42]); [q.content_ids, q.queued, q.already_queued, q.unknown, jobs::list(#{status: \"pending\", job_type: \"vectorize\"}).map(|j| j.content_id)]",
        "[[1, 3], [3], [1], [42], [2, 3]]",
    )],
};

pub(super) static TRANSCRIPT_FLAGS: Spec = Spec {
    module: "integrity",
    name: "transcript_flags",
    params: &[],
    options: &[],
    returns: "Map",
    doc: "content.transcript_available against the transcripts rows, both ways: \
          flagged_without_rows and rows_without_flag (counts, with samples of 20), checked. \
          integrity::check carries the same as its transcripts field; integrity::fix with \
          transcripts: true sets the flags to what the rows show.",
    examples: &[Example::new(
        "let t = integrity::transcript_flags(); [t.flagged_without_rows, t.rows_without_flag]",
        "[0, 0]",
    )],
};

pub(super) static DELETE_CONTENT: Spec = Spec {
    module: "integrity",
    name: "delete_content",
    params: &[Param::new("content_id", Kind::Int, "the content row's id")],
    options: &[],
    returns: "Map",
    doc: "The guide's cascade delete of one content item: its chunk points (by the mappings' ids \
          and by payload content_id) and summary point in Qdrant first, then in one PostgreSQL \
          transaction its transcripts, jobs, mappings and row. A crash between the two leaves \
          mappings without points, which check-data reports; running it again finishes. Asks for \
          confirmation; with --dry-run nothing changes. Returns dry_run, content_id, existed, \
          chunk_points, summary_points, transcripts, jobs, mappings.",
    examples: &[Example::new(
        "let d = integrity::delete_content(1); [d.existed, d.chunk_points, d.summary_points, d.jobs, d.mappings, qdrant::count(\"youtube_content\")]",
        "[true, 2, 1, 4, 2, 2]",
    )],
};
