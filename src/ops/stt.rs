//! `stt::` — what the STT workers' paid fallback (OpenAI's API, $0.006 a minute) costs, and the
//! runs waiting for an operator's approval.
//!
//! Facts from the deployment's code. Each run is a row of stt_cost_tracking (content_id,
//! duration_seconds, cost_usd, api_provider 'openai' or 'whisper_server', processed_at in UTC
//! without a zone, approved_by_user, approval_timestamp); the application creates the table, so
//! it may be absent: "not in use yet". Only 'openai' rows cost money, summed since UTC midnight
//! and since the 1st of the month. A run that needs approval is a field of the Redis hash
//! `stt:pending_approval` named `stt_approval_{content_id}_{epoch}`, whose value is JSON
//! {approval_id, content_id, title, channel_name, duration_seconds, duration_minutes,
//! estimated_cost_usd, requested_at, status}; the worker polls its status every 30 s and fails
//! the job after 3600 s. Approving adds approved_by and approved_at, rejecting rejected_by,
//! rejected_at and rejection_reason, each with the status changed, as the workers read them.
//! A value that is not such JSON is listed as malformed and never rewritten; a write replaces
//! the value only if it is still the one read (compare-and-set in one EVAL).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::key;
use crate::ops::Target;
use crate::ops::destructive::{Change, Confirm, done, proceed};
use crate::ops::error::OpError;
use crate::ops::spec::{Default, Example, Kind, Opt, Param, Registrar, Spec};

pub const HASH: &str = "stt:pending_approval";
pub const TABLE: &str = "stt_cost_tracking";
/// How many of the month's biggest runs spend() lists.
const BIGGEST: i64 = 5;

fn limit(target: &Target, k: key::Text) -> f64 {
    // Validated when the settings were read (a number of 0 or more).
    target.settings.text(k).trim().parse().unwrap_or(0.0)
}

#[derive(Debug, Serialize)]
pub struct Window {
    pub spent_usd: f64,
    pub limit_usd: f64,
    /// spent / limit × 100, one decimal (0 when the limit is 0).
    pub percent: f64,
    pub runs: i64,
    pub minutes: f64,
    /// "$1.20 of $10.00 (12.0%)", for reports.
    pub words: String,
}

#[derive(Debug, Serialize)]
pub struct Run {
    pub content_id: Option<i64>,
    pub cost_usd: f64,
    pub duration_seconds: f64,
    pub processed_at: Option<String>,
    pub approved_by_user: Option<bool>,
    /// "$8.50 for 1416.7 minutes", for reports.
    pub words: String,
}

#[derive(Debug, Serialize)]
pub struct Spend {
    /// False when stt_cost_tracking does not exist: nothing was ever tracked.
    pub in_use: bool,
    pub detail: String,
    pub today: Window,
    pub month: Window,
    pub single_video_limit_usd: f64,
    pub auto_approve_threshold_usd: f64,
    /// This month's most expensive paid runs, most expensive first.
    pub biggest: Vec<Run>,
    /// This month's paid runs above the single-video limit (they needed an approval).
    pub over_single_video_limit: i64,
    /// This month's runs on the deployment's own whisper-server (free).
    pub whisper_server_runs: i64,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn window(spent: f64, limit: f64, runs: i64, seconds: f64) -> Window {
    let percent = if limit > 0.0 {
        round1(spent / limit * 100.0)
    } else {
        0.0
    };
    Window {
        spent_usd: (spent * 10_000.0).round() / 10_000.0,
        limit_usd: limit,
        percent,
        runs,
        minutes: round1(seconds / 60.0),
        words: format!("${spent:.2} of ${limit:.2} ({percent:.1}%)"),
    }
}

/// processed_at as a UTC timestamp without zone, whichever type the application gave it.
async fn processed_at_expr(target: &Target) -> Result<Option<&'static str>, OpError> {
    let pool = target.pg().await?;
    let ty: Option<String> = sqlx::query_scalar(
        "SELECT data_type::text FROM information_schema.columns
         WHERE table_name = $1 AND column_name = 'processed_at'
           AND table_schema = ANY(current_schemas(false))
         LIMIT 1",
    )
    .bind(TABLE)
    .fetch_optional(pool)
    .await
    .map_err(target.pg_err())?;
    Ok(ty.map(|t| {
        if t == "timestamp with time zone" {
            "(processed_at AT TIME ZONE 'UTC')"
        } else {
            "processed_at"
        }
    }))
}

/// A row of stt_cost_tracking as spend() reads it.
type RunRow = (
    Option<i32>,
    f64,
    f64,
    Option<chrono::NaiveDateTime>,
    Option<bool>,
);

pub async fn spend(target: &Target) -> Result<Spend, OpError> {
    let (day_limit, month_limit) = (
        limit(target, key::STT_DAILY_COST_LIMIT),
        limit(target, key::STT_MONTHLY_COST_LIMIT),
    );
    let single = limit(target, key::STT_SINGLE_VIDEO_LIMIT);
    let mut out = Spend {
        in_use: false,
        detail: format!("not in use yet: there is no table {TABLE} (the STT workers create it)"),
        today: window(0.0, day_limit, 0, 0.0),
        month: window(0.0, month_limit, 0, 0.0),
        single_video_limit_usd: single,
        auto_approve_threshold_usd: limit(target, key::STT_AUTO_APPROVE_THRESHOLD),
        biggest: Vec::new(),
        over_single_video_limit: 0,
        whisper_server_runs: 0,
    };
    let Some(at) = processed_at_expr(target).await? else {
        return Ok(out);
    };
    let pool = target.pg().await?;
    let since = "date_trunc('day', now() AT TIME ZONE 'UTC')";
    let month = "date_trunc('month', now() AT TIME ZONE 'UTC')";
    let paid = "api_provider = 'openai'";
    let sql = format!(
        "SELECT COALESCE(sum(cost_usd) FILTER (WHERE {paid} AND {at} >= {since}), 0)::float8,
                count(*) FILTER (WHERE {paid} AND {at} >= {since}),
                COALESCE(sum(duration_seconds) FILTER (WHERE {paid} AND {at} >= {since}), 0)::float8,
                COALESCE(sum(cost_usd) FILTER (WHERE {paid}), 0)::float8,
                count(*) FILTER (WHERE {paid}),
                COALESCE(sum(duration_seconds) FILTER (WHERE {paid}), 0)::float8,
                count(*) FILTER (WHERE {paid} AND cost_usd > $1),
                count(*) FILTER (WHERE api_provider = 'whisper_server')
         FROM {TABLE} WHERE {at} >= {month}"
    );
    let row: (f64, i64, f64, f64, i64, f64, i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(single)
        .fetch_one(pool)
        .await
        .map_err(target.pg_err())?;
    out.in_use = true;
    out.today = window(row.0, day_limit, row.1, row.2);
    out.month = window(row.3, month_limit, row.4, row.5);
    out.over_single_video_limit = row.6;
    out.whisper_server_runs = row.7;
    out.detail = format!("today {}, this month {}", out.today.words, out.month.words);
    let biggest: Vec<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT content_id, cost_usd::float8, duration_seconds::float8, {at}, approved_by_user
             FROM {TABLE} WHERE {paid} AND {at} >= {month}
             ORDER BY cost_usd DESC, {at} DESC LIMIT {BIGGEST}"
    )))
    .fetch_all(pool)
    .await
    .map_err(target.pg_err())?;
    out.biggest = biggest
        .into_iter()
        .map(|(content_id, cost, secs, at, approved)| Run {
            content_id: content_id.map(i64::from),
            cost_usd: cost,
            duration_seconds: secs,
            processed_at: at.map(crate::ops::clients::postgres::fmt_ts),
            approved_by_user: approved,
            words: format!("${cost:.2} for {} minutes", round1(secs / 60.0)),
        })
        .collect();
    Ok(out)
}

#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    pub approval_id: String,
    pub content_id: Option<i64>,
    pub title: Option<String>,
    pub channel_name: Option<String>,
    pub duration_minutes: Option<f64>,
    pub estimated_cost_usd: Option<f64>,
    pub requested_at: String,
    pub status: String,
    /// Seconds since requested_at.
    pub age_seconds: i64,
    /// Seconds before the worker gives up on it (0 once it has).
    pub seconds_left: i64,
    /// Older than stt.approval_timeout: the worker has failed its job.
    pub timed_out: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Malformed {
    pub field: String,
    pub reason: String,
    /// The first 80 characters of the value.
    pub value: String,
}

#[derive(Debug, Serialize)]
pub struct Pending {
    /// False when the hash does not exist: no run ever waited for approval.
    pub in_use: bool,
    pub detail: String,
    pub timeout_seconds: i64,
    /// Approvals with status pending, oldest first.
    pub approvals: Vec<Approval>,
    /// The other fields of the hash by status (approved, rejected, …).
    pub decided: BTreeMap<String, i64>,
    pub malformed: Vec<Malformed>,
}

/// A field's value read as an approval, or why it is not one.
fn parse(
    field: &str,
    text: &str,
    now: chrono::NaiveDateTime,
    timeout: i64,
) -> Result<(Approval, Map<String, Value>), String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(map) = value else {
        return Err("not a JSON object".into());
    };
    let Some(status) = map.get("status").and_then(Value::as_str) else {
        return Err("no status".into());
    };
    let Some(requested) = map.get("requested_at").and_then(Value::as_str) else {
        return Err("no requested_at".into());
    };
    let at =
        parse_time(requested).ok_or_else(|| format!("requested_at `{requested}` is not a time"))?;
    let age = (now - at).num_seconds().max(0);
    let text_of = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_string);
    let approval = Approval {
        approval_id: text_of("approval_id").unwrap_or_else(|| field.to_string()),
        content_id: map.get("content_id").and_then(Value::as_i64),
        title: text_of("title"),
        channel_name: text_of("channel_name"),
        duration_minutes: map.get("duration_minutes").and_then(Value::as_f64),
        estimated_cost_usd: map.get("estimated_cost_usd").and_then(Value::as_f64),
        requested_at: requested.to_string(),
        status: status.to_string(),
        age_seconds: age,
        seconds_left: (timeout - age).max(0),
        timed_out: age >= timeout,
    };
    Ok((approval, map))
}

/// Python's datetime.isoformat() of utcnow() (no zone), or an RFC 3339 time.
fn parse_time(text: &str) -> Option<chrono::NaiveDateTime> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.naive_utc());
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
        .ok()
}

fn now_utc() -> chrono::NaiveDateTime {
    chrono::Utc::now().naive_utc()
}

/// The time as the workers write it (datetime.utcnow().isoformat()).
fn iso_now() -> String {
    now_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

fn timeout_secs(target: &Target) -> i64 {
    target
        .settings
        .duration(key::STT_APPROVAL_TIMEOUT)
        .as_secs() as i64
}

async fn read_hash(target: &Target) -> Result<Option<Vec<(String, String)>>, OpError> {
    let mut conn = target.redis().await?.conn.clone();
    let exists: i64 = redis::cmd("EXISTS")
        .arg(HASH)
        .query_async(&mut conn)
        .await
        .map_err(target.redis_err())?;
    if exists == 0 {
        return Ok(None);
    }
    let fields: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(HASH)
        .query_async(&mut conn)
        .await
        .map_err(target.redis_err())?;
    Ok(Some(fields))
}

pub async fn pending(target: &Target) -> Result<Pending, OpError> {
    let timeout = timeout_secs(target);
    let mut out = Pending {
        in_use: false,
        detail: format!("not in use yet: there is no hash {HASH} (no run has waited for approval)"),
        timeout_seconds: timeout,
        approvals: Vec::new(),
        decided: BTreeMap::new(),
        malformed: Vec::new(),
    };
    let Some(fields) = read_hash(target).await? else {
        return Ok(out);
    };
    out.in_use = true;
    let now = now_utc();
    for (field, text) in fields {
        match parse(&field, &text, now, timeout) {
            Ok((a, _)) if a.status == "pending" => out.approvals.push(a),
            Ok((a, _)) => *out.decided.entry(a.status).or_default() += 1,
            Err(reason) => out.malformed.push(Malformed {
                field,
                reason,
                value: text.chars().take(80).collect(),
            }),
        }
    }
    out.approvals.sort_by(|a, b| {
        b.age_seconds
            .cmp(&a.age_seconds)
            .then(a.approval_id.cmp(&b.approval_id))
    });
    out.malformed.sort_by(|a, b| a.field.cmp(&b.field));
    out.detail = format!(
        "{} waiting for approval, {} decided, {} malformed",
        out.approvals.len(),
        out.decided.values().sum::<i64>(),
        out.malformed.len()
    );
    Ok(out)
}

#[derive(Debug, Default, Serialize)]
pub struct NotPending {
    pub approval_id: String,
    pub status: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Decided {
    pub dry_run: bool,
    /// approved or rejected.
    pub decision: String,
    /// The approvals changed (with --dry-run: that would be).
    pub changed: Vec<String>,
    /// Already decided (or timed out and decided by the worker): left as they are.
    pub not_pending: Vec<NotPending>,
    pub not_found: Vec<String>,
    /// Values that are not an approval's JSON: never rewritten.
    pub malformed: Vec<String>,
    /// Changed by someone else between the read and the write: left as they are now.
    pub raced: Vec<String>,
}

/// Replaces a field's value only if it is still `old`.
const CAS: &str = "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then \
                   redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) return 1 else return 0 end";

/// Approves (or rejects, with `reason`) the pending approvals named.
pub async fn decide(
    target: &Target,
    ids: &[String],
    by: &str,
    reject: Option<Option<String>>,
) -> Result<Decided, OpError> {
    let decision = if reject.is_some() {
        "rejected"
    } else {
        "approved"
    };
    let mut out = Decided {
        decision: decision.into(),
        ..Decided::default()
    };
    let mut conn = target.redis().await?.conn.clone();
    let now = now_utc();
    let timeout = timeout_secs(target);
    let mut plan: Vec<(String, String, String)> = Vec::new();
    for id in ids {
        let old: Option<String> = redis::cmd("HGET")
            .arg(HASH)
            .arg(id)
            .query_async(&mut conn)
            .await
            .map_err(target.redis_err())?;
        let Some(old) = old else {
            out.not_found.push(id.clone());
            continue;
        };
        let Ok((approval, mut map)) = parse(id, &old, now, timeout) else {
            out.malformed.push(id.clone());
            continue;
        };
        if approval.status != "pending" {
            out.not_pending.push(NotPending {
                approval_id: id.clone(),
                status: approval.status,
            });
            continue;
        }
        let at = iso_now();
        map.insert("status".into(), Value::from(decision));
        match &reject {
            None => {
                map.insert("approved_by".into(), Value::from(by));
                map.insert("approved_at".into(), Value::from(at));
            }
            Some(reason) => {
                map.insert("rejected_by".into(), Value::from(by));
                map.insert("rejected_at".into(), Value::from(at));
                map.insert(
                    "rejection_reason".into(),
                    reason.clone().map_or(Value::Null, Value::from),
                );
            }
        }
        plan.push((id.clone(), old, Value::Object(map).to_string()));
    }
    let verb = if reject.is_some() {
        "reject"
    } else {
        "approve"
    };
    let change = Change {
        op: if reject.is_some() {
            "stt::reject"
        } else {
            "stt::approve"
        },
        summary: format!(
            "{verb} {} STT runs on the paid API ({})",
            plan.len(),
            plan.iter()
                .map(|p| p.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        count: plan.len() as i64,
        confirm: Confirm::Yes,
    };
    if !proceed(target, &change)? {
        out.dry_run = true;
        out.changed = plan.into_iter().map(|p| p.0).collect();
        return Ok(out);
    }
    for (id, old, new) in plan {
        let set: i64 = redis::cmd("EVAL")
            .arg(CAS)
            .arg(1)
            .arg(HASH)
            .arg(&id)
            .arg(&old)
            .arg(&new)
            .query_async(&mut conn)
            .await
            .map_err(target.redis_err())?;
        if set == 1 {
            out.changed.push(id);
        } else {
            out.raced.push(id);
        }
    }
    if !out.changed.is_empty() {
        done(
            target,
            &change,
            &format!("{decision} by {by}: {}", out.changed.join(", ")),
        );
    }
    Ok(out)
}

const BY: Opt = Opt::new(
    "by",
    Kind::Str,
    Default::Value("opsh"),
    "who decided (written as approved_by / rejected_by)",
);

static SPEND: Spec = Spec {
    module: "stt",
    name: "spend",
    params: &[],
    options: &[],
    returns: "Map",
    doc: "What the STT workers' paid fallback (OpenAI, api_provider 'openai') cost since UTC \
          midnight (today) and since the 1st of the month (month), from stt_cost_tracking, \
          against the limits stt.daily_cost_limit and stt.monthly_cost_limit (the workers' \
          STT_DAILY_COST_LIMIT and STT_MONTHLY_COST_LIMIT): spent_usd, limit_usd, percent, \
          runs, minutes each; biggest (the month's 5 most expensive runs), \
          over_single_video_limit, whisper_server_runs, single_video_limit_usd, \
          auto_approve_threshold_usd, detail. in_use is false, and nothing else is read, when \
          the table does not exist (the workers create it on first use).",
    examples: &[
        Example::new(
            "let s = stt::spend(); [s.in_use, s.today.spent_usd, s.today.limit_usd, s.today.percent, s.today.runs]",
            "[true, 1.2, 10.0, 12.0, 2]",
        ),
        Example::new(
            "stt::spend().biggest.map(|r| [r.content_id, r.cost_usd])",
            "[[1, 0.9], [2, 0.3]]",
        ),
    ],
};

static PENDING: Spec = Spec {
    module: "stt",
    name: "pending",
    params: &[],
    options: &[],
    returns: "Map",
    doc: "The runs waiting for cost approval in the Redis hash stt:pending_approval, oldest \
          first: approvals (approval_id, content_id, title, channel_name, duration_minutes, \
          estimated_cost_usd, requested_at, status, age_seconds, seconds_left before the worker \
          fails the job after stt.approval_timeout, timed_out); decided (the other fields by \
          status); malformed (field, reason, value: fields that are not an approval's JSON, \
          never rewritten); timeout_seconds; in_use (false when the hash does not exist).",
    examples: &[
        Example::new(
            "let p = stt::pending(); [p.approvals.map(|a| a.approval_id), p.decided, p.malformed.map(|m| m.field)]",
            r#"[["stt_approval_3_1764000000.5"], {"approved": 1}, ["stt_approval_9_broken"]]"#,
        ),
        Example::new(
            "let a = stt::pending().approvals[0]; [a.content_id, a.estimated_cost_usd, a.seconds_left > 0, a.timed_out]",
            "[3, 0.36, true, false]",
        ),
    ],
};

static APPROVE: Spec = Spec {
    module: "stt",
    name: "approve",
    params: &[Param::new(
        "approval_ids",
        Kind::Strings,
        "one approval id or an array of them",
    )],
    options: &[BY],
    returns: "Map",
    doc: "Approves pending STT runs, writing what the workers read: status approved, approved_by, \
          approved_at (UTC, as the workers write times). An approval no longer pending is left \
          as it is (not_pending), as is a malformed value; the write replaces the value only if \
          it is still the one read (raced otherwise). Asks for confirmation; with --dry-run \
          nothing changes. Returns dry_run, decision, changed, not_pending, not_found, \
          malformed, raced.",
    examples: &[Example::new(
        r#"let d = stt::approve(["stt_approval_3_1764000000.5", "stt_approval_1_1763990000.1", "nope"], #{by: "oncall"}); [d.changed, d.not_pending.map(|n| n.status), d.not_found, stt::pending().approvals.len()]"#,
        r#"[["stt_approval_3_1764000000.5"], ["approved"], ["nope"], 0]"#,
    )],
};

static REJECT: Spec = Spec {
    module: "stt",
    name: "reject",
    params: &[Param::new("approval_id", Kind::Str, "the approval's id")],
    options: &[
        BY,
        Opt::new(
            "reason",
            Kind::Str,
            Default::None,
            "written as rejection_reason",
        ),
    ],
    returns: "Map",
    doc: "Rejects a pending STT run, writing status rejected, rejected_by, rejected_at and \
          rejection_reason, as the workers read them; the worker then fails its job. Otherwise \
          as stt::approve.",
    examples: &[Example::new(
        r#"let d = stt::reject("stt_approval_3_1764000000.5", #{reason: "too long"}); [d.decision, d.changed, stt::pending().decided]"#,
        r#"["rejected", ["stt_approval_3_1764000000.5"], {"approved": 1, "rejected": 1}]"#,
    )],
};

pub fn register(reg: &mut Registrar) {
    reg.add(&SPEND, |c| c.block(spend(c.target)));
    reg.add(&PENDING, |c| c.block(pending(c.target)));
    reg.add(&APPROVE, |c| {
        let ids = c.opt_strings("approval_ids")?.unwrap_or_default();
        c.block(decide(c.target, &ids, &c.str("by")?, None))
    });
    reg.add(&REJECT, |c| {
        let ids = [c.str("approval_id")?];
        let reason = c.opt_str("reason")?;
        c.block(decide(c.target, &ids, &c.str("by")?, Some(reason)))
    });
}
