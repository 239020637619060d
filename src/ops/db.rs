//! `db::` — the PostgreSQL database: ping, table sizes, schema check, read-only queries with
//! bound parameters, the managed schema and `opsh migrate` (schema), advisory locks for unattended runs.

use crate::config::key;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::io::IsTerminal;
use std::rc::Rc;
use std::time::Instant;

use rhai::{Array, Dynamic, Map};
use serde::Serialize;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnection, PgRow};
use sqlx::{AssertSqlSafe, Column, Connection, Postgres, Row, TypeInfo, ValueRef};

use crate::ops::Target;
use crate::ops::clients::postgres::{PgTls, fmt_ts, percent_decode};
use crate::ops::error::{ErrorKind, OpError};
use crate::ops::spec::{Default, Example, Kind, Opt, Param, Registrar, Spec};

pub mod schema;

#[derive(Debug, Serialize)]
pub struct Ping {
    pub address: String,
    pub server_version: String,
    pub latency_ms: f64,
}

pub async fn ping(target: &Target) -> Result<Ping, OpError> {
    let pool = target.pg().await?;
    let started = Instant::now();
    let version: String = sqlx::query_scalar("SELECT current_setting('server_version')")
        .fetch_one(pool)
        .await
        .map_err(target.pg_err())?;
    Ok(Ping {
        address: target.pg_backend().address.clone(),
        server_version: version,
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

#[derive(Debug, Serialize)]
pub struct Table {
    pub name: String,
    /// The planner's estimate (pg_class.reltuples); () when the table was never analysed.
    pub estimated_rows: Option<i64>,
    /// count(*), only when asked for with `#{exact: true}`.
    pub exact_rows: Option<i64>,
    pub total_bytes: i64,
    pub total_size: String,
}

pub async fn tables(target: &Target, exact: bool) -> Result<Vec<Table>, OpError> {
    let pool = target.pg().await?;
    let rows = sqlx::query(
        "SELECT c.relname::text, c.reltuples::bigint, pg_total_relation_size(c.oid),
                pg_size_pretty(pg_total_relation_size(c.oid))
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema()
         ORDER BY pg_total_relation_size(c.oid) DESC, c.relname",
    )
    .fetch_all(pool)
    .await
    .map_err(target.pg_err())?;
    let mut tables = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.get(0);
        let estimated: i64 = row.get(1);
        let exact_rows = if exact {
            let sql = format!("SELECT count(*) FROM \"{}\"", name.replace('"', "\"\""));
            Some(
                sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql))
                    .fetch_one(pool)
                    .await
                    .map_err(target.pg_err())?,
            )
        } else {
            None
        };
        tables.push(Table {
            name,
            estimated_rows: (estimated >= 0).then_some(estimated),
            exact_rows,
            total_bytes: row.get(2),
            total_size: row.get(3),
        });
    }
    Ok(tables)
}

#[derive(Debug, Serialize)]
pub struct Size {
    pub database: String,
    pub bytes: i64,
    pub pretty: String,
}

pub async fn size(target: &Target) -> Result<Size, OpError> {
    let pool = target.pg().await?;
    let (database, bytes, pretty): (String, i64, String) = sqlx::query_as(
        "SELECT current_database()::text, pg_database_size(current_database()),
                pg_size_pretty(pg_database_size(current_database()))",
    )
    .fetch_one(pool)
    .await
    .map_err(target.pg_err())?;
    Ok(Size {
        database,
        bytes,
        pretty,
    })
}

#[derive(Debug, Serialize)]
pub struct Missing {
    /// table, column, index, or a difference: default, nullability, index name, extra index
    pub kind: &'static str,
    pub name: String,
    pub reason: String,
    pub fix: String,
}

#[derive(Debug, Serialize)]
pub struct SchemaCheck {
    pub ok: bool,
    /// What the schema lacks or has otherwise than the deployment's schema plus opsh's
    /// additions: exactly what `opsh migrate` would change.
    pub missing: Vec<Missing>,
    /// What migrate would leave alone but the operator should know.
    pub warnings: Vec<String>,
}

/// Columns of the deployment's that the procedures read: `opsh migrate` does not add these to
/// an existing table (the deployment's init.sql makes them), so they are checked on their own.
const REQUIRED: &[(&str, &[&str])] = &[
    ("channels", &["id", "name", "url"]),
    ("content", &["id", "channel_id", "vector_stored"]),
    ("transcripts", &["id", "content_id"]),
    (
        "processing_jobs",
        &[
            "id",
            "job_type",
            "content_id",
            "status",
            "priority",
            "error_message",
            "started_at",
            "completed_at",
            "created_at",
        ],
    ),
    (
        "vector_mappings",
        &["id", "content_id", "chunk_id", "vector_collection"],
    ),
];

pub async fn schema_check(target: &Target) -> Result<SchemaCheck, OpError> {
    let pool = target.pg().await?;
    let mut conn = pool.acquire().await.map_err(target.pg_err())?;
    let plan = schema::plan(&mut conn).await.map_err(target.pg_err())?;
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT t.name, a.attname::text FROM unnest($1::text[]) AS t(name)
         JOIN pg_attribute a ON a.attrelid = to_regclass(quote_ident(t.name))
         WHERE a.attnum > 0 AND NOT a.attisdropped",
    )
    .bind(schema::table_names().collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await
    .map_err(target.pg_err())?;
    let present: BTreeSet<(&str, &str)> = columns
        .iter()
        .map(|(t, c)| (t.as_str(), c.as_str()))
        .collect();
    let tables: BTreeSet<&str> = columns.iter().map(|(t, _)| t.as_str()).collect();
    let mut missing: Vec<Missing> = plan
        .changes
        .into_iter()
        .map(|c| Missing {
            kind: c.kind,
            name: c.name,
            reason: c.reason,
            fix: "run `opsh migrate`".into(),
        })
        .collect();
    for (table, needed) in REQUIRED {
        if !tables.contains(table) {
            continue;
        }
        for column in *needed {
            if !present.contains(&(table, column)) {
                missing.push(Missing {
                    kind: "column",
                    name: format!("{table}.{column}"),
                    reason: "the deployment's init.sql makes it; `opsh migrate` does not add it to an existing table".into(),
                    fix: format!("add it by hand as deployment-schema.md defines {table}.{column}"),
                });
            }
        }
    }
    Ok(SchemaCheck {
        ok: missing.is_empty(),
        missing,
        warnings: plan.warnings,
    })
}

/// Plans the managed schema against the catalog and applies the plan (with --dry-run only
/// lists it): see `schema`.
pub async fn migrate(target: &Target) -> Result<schema::Migrated, OpError> {
    let pool = target.pg().await?;
    let mut conn = pool.acquire().await.map_err(target.pg_err())?;
    let result = schema::migrate(&mut conn, target.flags.dry_run).await;
    if !target.flags.dry_run {
        // The jobs functions read processing_jobs' columns anew.
        schema::forget_shape(target.settings.text(key::POSTGRES_URL));
    }
    result.map_err(|e| {
        // Whatever state the session is in, it does not go back to the pool.
        conn.close_on_drop();
        match e {
            schema::MigrateError::Db(e) => target.pg_err()(e),
            busy @ schema::MigrateError::Busy => {
                OpError::backend(target.pg_backend(), ErrorKind::Failed, busy)
            }
            schema::MigrateError::Change {
                kind,
                name,
                error,
                done,
            } => {
                let lock_timeout = schema::is_lock_timeout(&error);
                let mut op = target.pg_err()(error);
                op.cause = schema::failed_change(kind, &name, &op.cause, lock_timeout, done);
                op
            }
        }
    })
}

/// Runs a query in a read-only transaction with bound parameters; rows become maps.
///
/// Read-only stops writes, not server functions with side effects. So the transaction also
/// gets a statement timeout (postgres.query_timeout) and, when the site provides one, a
/// confined role (postgres.query_role, SET LOCAL ROLE); and afterwards the connection is reset
/// with DISCARD ALL, so nothing the query did to its session (an advisory lock, a setting, a
/// prepared statement) outlives the call. A connection that cannot be reset — an error, a
/// cancelled call — is closed instead of going back to the pool.
pub async fn query(target: &Target, sql: &str, params: Array) -> Result<Vec<Map>, OpError> {
    Ok(query_with_columns(target, sql, params).await?.0)
}

/// [`query`]'s rows and the names of its columns in the order the query gives them.
pub async fn query_with_columns(
    target: &Target,
    sql: &str,
    params: Array,
) -> Result<(Vec<Map>, Vec<String>), OpError> {
    let mut q = sqlx::query(AssertSqlSafe(sql.to_string()));
    for (i, p) in params.into_iter().enumerate() {
        q = bind(q, p).map_err(|why| OpError::invalid(format!("parameter ${}: {why}", i + 1)))?;
    }
    let pool = target.pg().await?;
    let started = Instant::now();
    let mut session = Session {
        conn: pool.acquire().await.map_err(target.pg_err())?,
        reset: false,
    };
    let timeout = target.settings.duration(key::POSTGRES_QUERY_TIMEOUT);
    let role = match target.settings.text(key::POSTGRES_QUERY_ROLE) {
        "" => default_query_role(target, &mut session.conn).await,
        configured => configured.to_string(),
    };
    let rows = async {
        let mut tx = session.conn.begin().await?;
        sqlx::query("SET TRANSACTION READ ONLY")
            .execute(&mut *tx)
            .await?;
        // 0 disables the limit, as for PostgreSQL itself.
        let ms = match timeout.as_millis() {
            0 if !timeout.is_zero() => 1,
            ms => ms,
        };
        sqlx::query("SELECT set_config('statement_timeout', $1, true)")
            .bind(ms.to_string())
            .execute(&mut *tx)
            .await?;
        if !role.is_empty() {
            let set_role = format!("SET LOCAL ROLE \"{}\"", role.replace('"', "\"\""));
            sqlx::query(AssertSqlSafe(set_role))
                .execute(&mut *tx)
                .await?;
        }
        let rows = q.fetch_all(&mut *tx).await;
        tx.rollback().await?;
        rows
    }
    .await;
    let reset = async {
        sqlx::raw_sql("DISCARD ALL")
            .execute(&mut *session.conn)
            .await?;
        // DISCARD ALL deallocated sqlx's prepared statements behind its back.
        session.conn.clear_cached_statements().await
    };
    match reset.await {
        Ok(()) => session.reset = true,
        Err(e) => tracing::debug!("db::query: closing the connection, its reset failed: {e}"),
    }
    let rows = rows.map_err(|e| {
        let code = e
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.into_owned());
        let timed_out = code.as_deref() == Some("57014")
            && e.as_database_error()
                .is_some_and(|d| d.message().contains("statement timeout"));
        let mut err = target.pg_err()(e);
        if timed_out {
            let limit = crate::duration::format(timeout);
            err.cause
                .push_str(&format!(" (postgres.query_timeout is {limit})"));
        }
        if !role.is_empty() && code.as_deref() == Some("42501") {
            let why = match target.settings.text(key::POSTGRES_QUERY_ROLE) {
                "" => "by default; postgres.query_role names another",
                _ => "postgres.query_role",
            };
            err.cause
                .push_str(&format!(" (db::query runs as role {role}, {why})"));
        }
        err
    })?;
    tracing::debug!(
        "db::query: {} rows in {:.1} ms",
        rows.len(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    let columns = rows
        .first()
        .map(|row| row.columns().iter().map(|c| c.name().to_string()).collect())
        .unwrap_or_default();
    let maps = rows
        .iter()
        .map(row_to_map)
        .collect::<Result<_, _>>()
        .map_err(OpError::invalid)?;
    Ok((maps, columns))
}

/// The built-in role that may read every table and nothing else (PostgreSQL 14 and later).
const READ_ALL: &str = "pg_read_all_data";

/// The role db::query runs as when postgres.query_role is empty: pg_read_all_data when the
/// server has it and the session may SET ROLE to it (a superuser may), so that a query cannot
/// read the server's files, reload its configuration or change a superuser setting; else ""
/// (the connection's own rights), said once per run. Decided once per database URL.
async fn default_query_role(target: &Target, conn: &mut PgConnection) -> String {
    static DECIDED: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());
    let url = target.settings.text(key::POSTGRES_URL).to_string();
    let known = |decided: &Vec<(String, String)>| {
        decided
            .iter()
            .find(|(u, _)| *u == url)
            .map(|(_, r)| r.clone())
    };
    if let Some(role) = DECIDED.lock().ok().and_then(|d| known(&d)) {
        return role;
    }
    let probe = async {
        let mut tx = conn.begin().await?;
        let set = sqlx::query(AssertSqlSafe(format!("SET LOCAL ROLE {READ_ALL}")))
            .execute(&mut *tx)
            .await;
        tx.rollback().await?;
        Ok::<_, sqlx::Error>(set.map_err(|e| e.to_string()))
    };
    let role = match probe.await {
        Ok(Ok(_)) => READ_ALL.to_string(),
        Ok(Err(why)) => {
            tracing::warn!(
                "db::query runs with the connection's own rights: it cannot SET ROLE {READ_ALL} ({why}); set postgres.query_role to a role that may only read"
            );
            String::new()
        }
        // The connection failed: the query itself will say so; decide again next time.
        Err(_) => return String::new(),
    };
    if let Ok(mut decided) = DECIDED.lock() {
        decided.push((url, role.clone()));
    }
    role
}

/// The connection of one db::query: closed rather than returned to the pool unless its reset
/// ran (an error, or the call cancelled by Ctrl-C or --timeout, drops it before that).
struct Session {
    conn: PoolConnection<Postgres>,
    reset: bool,
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.reset {
            self.conn.close_on_drop();
        }
    }
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

fn bind(q: PgQuery<'_>, value: Dynamic) -> Result<PgQuery<'_>, String> {
    if value.is_unit() {
        return Ok(q.bind(None::<String>));
    }
    if let Ok(i) = value.as_int() {
        return Ok(q.bind(i));
    }
    if let Ok(f) = value.as_float() {
        return Ok(q.bind(f));
    }
    if let Ok(b) = value.as_bool() {
        return Ok(q.bind(b));
    }
    if value.is_string() {
        return Ok(q.bind(value.to_string()));
    }
    if value.is_array() {
        let items = value.clone().into_array().unwrap_or_default();
        if items.iter().all(|v| v.as_int().is_ok()) {
            return Ok(q.bind(
                items
                    .iter()
                    .filter_map(|v| v.as_int().ok())
                    .collect::<Vec<i64>>(),
            ));
        }
        if items.iter().all(|v| v.is_string()) {
            return Ok(q.bind(items.iter().map(|v| v.to_string()).collect::<Vec<String>>()));
        }
        return Err("arrays must hold only integers or only strings".into());
    }
    if value.is_map() {
        let json = serde_json::to_value(&value).map_err(|e| e.to_string())?;
        return Ok(q.bind(json));
    }
    Err(format!(
        "a {} cannot be bound; use an integer, float, string, bool, array, map or ()",
        value.type_name()
    ))
}

fn row_to_map(row: &PgRow) -> Result<Map, String> {
    let mut map = Map::new();
    for (i, column) in row.columns().iter().enumerate() {
        map.insert(
            column.name().into(),
            decode(row, i, column.type_info().name())?,
        );
    }
    Ok(map)
}

/// One column value as a Rhai value; NULL is ().
fn decode(row: &PgRow, i: usize, ty: &str) -> Result<Dynamic, String> {
    let raw = row.try_get_raw(i).map_err(|e| e.to_string())?;
    if raw.is_null() {
        return Ok(Dynamic::UNIT);
    }
    let name = row.columns()[i].name().to_string();
    let err = |e: sqlx::Error| format!("column `{name}`: {e}");
    let value = match ty {
        // A function called for its effect (pg_sleep, pg_advisory_lock) returns void.
        "VOID" => Dynamic::UNIT,
        "BOOL" => Dynamic::from(row.try_get::<bool, _>(i).map_err(err)?),
        "INT2" => Dynamic::from(i64::from(row.try_get::<i16, _>(i).map_err(err)?)),
        "INT4" => Dynamic::from(i64::from(row.try_get::<i32, _>(i).map_err(err)?)),
        "INT8" => Dynamic::from(row.try_get::<i64, _>(i).map_err(err)?),
        "OID" => Dynamic::from(i64::from(
            row.try_get::<sqlx::postgres::types::Oid, _>(i)
                .map_err(err)?
                .0,
        )),
        "FLOAT4" => Dynamic::from(f64::from(row.try_get::<f32, _>(i).map_err(err)?)),
        "FLOAT8" => Dynamic::from(row.try_get::<f64, _>(i).map_err(err)?),
        "NUMERIC" => {
            let d = row.try_get::<rust_decimal::Decimal, _>(i).map_err(err)?;
            // Whole numbers (sum() of integers is numeric) stay integers.
            match (d.scale() == 0 || d.fract().is_zero(), i64::try_from(d)) {
                (true, Ok(n)) => Dynamic::from(n),
                _ => Dynamic::from(f64::try_from(d).map_err(|e| format!("column `{name}`: {e}"))?),
            }
        }
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CITEXT" | "UNKNOWN" | "CHAR" => {
            Dynamic::from(row.try_get::<String, _>(i).map_err(err)?)
        }
        "TIMESTAMP" => Dynamic::from(fmt_ts(
            row.try_get::<chrono::NaiveDateTime, _>(i).map_err(err)?,
        )),
        "TIMESTAMPTZ" => Dynamic::from(
            row.try_get::<chrono::DateTime<chrono::Utc>, _>(i)
                .map_err(err)?
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        ),
        "DATE" => Dynamic::from(
            row.try_get::<chrono::NaiveDate, _>(i)
                .map_err(err)?
                .to_string(),
        ),
        "TIME" => Dynamic::from(
            row.try_get::<chrono::NaiveTime, _>(i)
                .map_err(err)?
                .to_string(),
        ),
        "INTERVAL" => {
            let iv = row
                .try_get::<sqlx::postgres::types::PgInterval, _>(i)
                .map_err(err)?;
            // Seconds, counting a month as 30 days, as PostgreSQL's own EXTRACT(EPOCH) does.
            let days = f64::from(iv.months) * 30.0 + f64::from(iv.days);
            Dynamic::from(days * 86_400.0 + iv.microseconds as f64 / 1e6)
        }
        "UUID" => Dynamic::from(row.try_get::<uuid::Uuid, _>(i).map_err(err)?.to_string()),
        "JSON" | "JSONB" => {
            let v = row.try_get::<serde_json::Value, _>(i).map_err(err)?;
            rhai::serde::to_dynamic(v).map_err(|e| format!("column `{name}`: {e}"))?
        }
        "BYTEA" => Dynamic::from_blob(row.try_get::<Vec<u8>, _>(i).map_err(err)?),
        "INT2[]" => array(row.try_get::<Vec<Option<i16>>, _>(i).map_err(err)?, |v| {
            Dynamic::from(i64::from(v))
        }),
        "INT4[]" => array(row.try_get::<Vec<Option<i32>>, _>(i).map_err(err)?, |v| {
            Dynamic::from(i64::from(v))
        }),
        "INT8[]" => array(
            row.try_get::<Vec<Option<i64>>, _>(i).map_err(err)?,
            Dynamic::from,
        ),
        "FLOAT8[]" => array(
            row.try_get::<Vec<Option<f64>>, _>(i).map_err(err)?,
            Dynamic::from,
        ),
        "BOOL[]" => array(
            row.try_get::<Vec<Option<bool>>, _>(i).map_err(err)?,
            Dynamic::from,
        ),
        "TEXT[]" | "VARCHAR[]" | "NAME[]" => array(
            row.try_get::<Vec<Option<String>>, _>(i).map_err(err)?,
            Dynamic::from,
        ),
        "UUID[]" => array(
            row.try_get::<Vec<Option<uuid::Uuid>>, _>(i).map_err(err)?,
            |u| Dynamic::from(u.to_string()),
        ),
        other => {
            return Err(format!(
                "column `{name}` has type {other}, which opsh does not map; cast it in SQL, e.g. {name}::text"
            ));
        }
    };
    Ok(value)
}

fn array<T>(items: Vec<Option<T>>, f: impl Fn(T) -> Dynamic) -> Dynamic {
    Dynamic::from_array(
        items
            .into_iter()
            .map(|v| v.map(&f).unwrap_or(Dynamic::UNIT))
            .collect(),
    )
}

/// Session-level advisory locks, each held on a connection of its own until released or the
/// process ends, so two unattended runs of one procedure never overlap.
#[derive(Default)]
pub struct Locks(RefCell<HashMap<String, PoolConnection<Postgres>>>);

pub async fn try_lock(target: &Target, locks: &Locks, name: &str) -> Result<bool, OpError> {
    if locks.0.borrow().contains_key(name) {
        return Ok(true);
    }
    let mut conn = target
        .pg()
        .await?
        .acquire()
        .await
        .map_err(target.pg_err())?;
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
        .bind(name)
        .fetch_one(&mut *conn)
        .await
        .map_err(target.pg_err())?;
    if got {
        locks.0.borrow_mut().insert(name.to_string(), conn);
    }
    Ok(got)
}

pub async fn unlock(target: &Target, locks: &Locks, name: &str) -> Result<bool, OpError> {
    let Some(mut conn) = locks.0.borrow_mut().remove(name) else {
        return Ok(false);
    };
    sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
        .bind(name)
        .fetch_one(&mut *conn)
        .await
        .map_err(target.pg_err())
}

/// Runs psql on the configured database with the terminal attached and returns its exit code.
/// The password travels in PGPASSWORD, never on the command line where `ps` would show it.
pub fn shell(target: &Target) -> Result<i64, OpError> {
    // --json promises one JSON document on stdout. An interactive psql cannot keep it: refuse.
    // psql reading commands from a pipe can: its tables go to stderr.
    let tables_to_stderr = target.flags.json;
    if tables_to_stderr && std::io::stdin().is_terminal() {
        return Err(OpError::declined(
            "psql is interactive and prints tables, which cannot be one JSON document; run it without --json",
        ));
    }
    let url = url::Url::parse(target.settings.text(key::POSTGRES_URL))
        .map_err(|e| OpError::backend(target.pg_backend(), ErrorKind::Invalid, e))?;
    // TLS as opsh's own connection makes it (sslmode, sslrootcert, sslcert, sslkey).
    let tls = PgTls::from_url(target.settings.text(key::POSTGRES_URL))
        .and_then(|tls| tls.check().map(|()| tls))
        .map_err(|e| OpError::backend(target.pg_backend(), ErrorKind::Invalid, e))?;
    let mut cmd = std::process::Command::new("psql");
    cmd.env_remove("PGPASSWORD");
    cmd.envs(tls.tool_env());
    if let Some(host) = url.host_str() {
        cmd.args(["--host", host]);
    }
    if let Some(port) = url.port() {
        cmd.args(["--port", &port.to_string()]);
    }
    if !url.username().is_empty() {
        cmd.args(["--username", url.username()]);
    }
    let database = url.path().trim_start_matches('/');
    if !database.is_empty() {
        cmd.args(["--dbname", database]);
    }
    if let Some(password) = url.password() {
        let decoded = percent_decode(password);
        cmd.env("PGPASSWORD", decoded);
    }
    if tables_to_stderr {
        cmd.stdout(std::io::stderr());
    }
    let status = target.bridge.foreground(|| cmd.status()).map_err(|e| {
        OpError::backend(
            target.pg_backend(),
            ErrorKind::Failed,
            format!("cannot run psql: {e} (install the postgresql-client package)"),
        )
    })?;
    Ok(i64::from(
        status.code().unwrap_or(crate::error::code::UNKNOWN.into()),
    ))
}

static PING: Spec = Spec {
    module: "db",
    name: "ping",
    params: &[],
    options: &[],
    returns: "Map",
    doc: "Connects to PostgreSQL and reports address (password masked), server_version and \
          latency_ms. Fails with the address and the cause when the server is unreachable.",
    examples: &[Example::new(
        r#"let p = db::ping(); [p.address.contains("youtube_user"), p.server_version == db::query("SHOW server_version")[0].server_version]"#,
        "[true, true]",
    )],
};

static TABLES: Spec = Spec {
    module: "db",
    name: "tables",
    params: &[],
    options: &[Opt::new(
        "exact",
        Kind::Bool,
        Default::Value("false"),
        "also count each table's rows exactly (exact_rows)",
    )],
    returns: "Array",
    doc: "The tables of the current schema, largest first: name, estimated_rows (the planner's \
          estimate, () before the first ANALYZE), exact_rows, total_bytes, total_size.",
    examples: &[Example::new(
        r#"db::tables(#{exact: true}).filter(|t| t.name == "processing_jobs").map(|t| t.exact_rows)"#,
        "[8]",
    )],
};

static SIZE: Spec = Spec {
    module: "db",
    name: "size",
    params: &[],
    options: &[],
    returns: "Map",
    doc: "The database's size on disk: database, bytes, pretty (as pg_size_pretty).",
    examples: &[Example::new(
        r#"let s = db::size(); [s.database.starts_with("opsh_test_"), s.bytes == db::query("SELECT pg_database_size(current_database()) AS b")[0].b]"#,
        "[true, true]",
    )],
};

static SCHEMA_CHECK: Spec = Spec {
    module: "db",
    name: "schema_check",
    params: &[],
    options: &[],
    returns: "Map",
    doc: "What the schema lacks or has otherwise than the deployment's plus opsh's additions \
          (exactly what `opsh migrate` would change), each with kind, name, reason and fix, and \
          warnings. `ok` is true when nothing is missing.",
    examples: &[Example::new(
        "let c = db::schema_check(); [c.ok, c.missing]",
        "[true, []]",
    )],
};

static MIGRATE: Spec = Spec {
    module: "db",
    name: "migrate",
    params: &[],
    options: &[],
    returns: "Map",
    doc: "Makes the schema the deployment's plus opsh's additions: creates what is missing, \
          indexes on existing tables CONCURRENTLY and never one that duplicates an existing index; \
          keeps every row. Returns applied (each change: kind, name, reason, statements) and \
          warnings; with --dry-run nothing changes and pending lists what would.",
    examples: &[Example::new("db::migrate().applied", "[]")],
};

static QUERY: Spec = Spec {
    module: "db",
    name: "query",
    params: &[
        Param::new(
            "sql",
            Kind::Str,
            "one SQL statement; $1, $2, … for parameters",
        ),
        Param::optional(
            "params",
            Kind::Array,
            "values bound to $1, $2, … (never spliced into the SQL)",
        ),
    ],
    options: &[],
    returns: "Array",
    doc: "Runs a read-only query; each row is a map of column name to value (NULL is ()).",
    examples: &[
        Example::new(
            "db::query(\"SELECT 1 AS one, 'x' AS t, NULL AS n\")",
            r#"[{"n": null, "one": 1, "t": "x"}]"#,
        ),
        Example::new(
            r#"db::query("SELECT count(*) AS n FROM processing_jobs WHERE status = $1", ["pending"])[0].n"#,
            "2",
        ),
    ],
};

static SHELL: Spec = Spec {
    module: "db",
    name: "shell",
    params: &[],
    options: &[],
    returns: "i64",
    doc: "Opens psql on the configured database (password passed in the environment, never on \
          the command line) and returns psql's exit code. Reads commands from stdin when it is \
          not a terminal (the examples test gives it an empty one).",
    examples: &[Example::new("db::shell()", "0")],
};

static TRY_LOCK: Spec = Spec {
    module: "db",
    name: "try_lock",
    params: &[Param::new("name", Kind::Str, "the lock's name")],
    options: &[],
    returns: "bool",
    doc: "Takes a PostgreSQL advisory lock by name without waiting; false when another run holds \
          it. Held until db::unlock or the end of the process: guards unattended runs against \
          overlap.",
    examples: &[Example::new(
        r#"[db::try_lock("example-lock"), db::unlock("example-lock")]"#,
        "[true, true]",
    )],
};

static UNLOCK: Spec = Spec {
    module: "db",
    name: "unlock",
    params: &[Param::new("name", Kind::Str, "the lock's name")],
    options: &[],
    returns: "bool",
    doc: "Releases an advisory lock taken by db::try_lock; false when this run did not hold it.",
    examples: &[Example::new(r#"db::unlock("never-taken")"#, "false")],
};

pub fn register(reg: &mut Registrar) {
    reg.add(&PING, |c| c.block(ping(c.target)));
    reg.add(&TABLES, |c| c.block(tables(c.target, c.bool("exact")?)));
    reg.add(&SIZE, |c| c.block(size(c.target)));
    reg.add(&SCHEMA_CHECK, |c| c.block(schema_check(c.target)));
    reg.add(&MIGRATE, |c| c.block(migrate(c.target)));
    reg.add(&QUERY, |c| {
        let sql = c.str("sql")?;
        let params = c
            .value("params")
            .and_then(|p| p.try_cast::<Array>())
            .unwrap_or_default();
        let (rows, columns) = c.block(query_with_columns(c.target, &sql, params))?;
        let mut rows = Dynamic::from_array(rows.into_iter().map(Dynamic::from_map).collect());
        crate::columns::attach(&mut rows, &columns);
        Ok(rows)
    });
    reg.add(&SHELL, |c| Ok(shell(c.target)?));
    let locks = Rc::new(Locks::default());
    let l = locks.clone();
    reg.add(&TRY_LOCK, move |c| {
        c.block(try_lock(c.target, &l, &c.str("name")?))
    });
    reg.add(&UNLOCK, move |c| {
        c.block(unlock(c.target, &locks, &c.str("name")?))
    });
}
