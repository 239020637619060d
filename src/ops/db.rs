//! `db::` — the PostgreSQL database: ping, table sizes, schema check, read-only queries with
//! bound parameters, migrations of the managed schema, advisory locks for unattended runs.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::time::Instant;

use rhai::{Array, Dynamic, Map, Module, NativeCallContext};
use serde::Serialize;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{AssertSqlSafe, Column, Postgres, Row, TypeInfo, ValueRef};

use crate::ops::Target;
use crate::ops::support::{OpError, Opts, RhaiResult, block, func, to_rhai};

/// The managed schema's migrations, embedded.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A PostgreSQL error as an operation error naming the server, in the server's own words
/// (without sqlx's wrapping), plus its detail and hint, and for the mistakes a script author
/// makes, how to fix them.
pub fn pg_err(target: &Target) -> impl Fn(sqlx::Error) -> OpError + '_ {
    move |e| OpError::backend("postgres", target.pg_address(), describe_db_error(&e))
}

fn describe_db_error(e: &sqlx::Error) -> String {
    let Some(db) = e.as_database_error() else {
        return e.to_string();
    };
    let mut text = db.message().to_string();
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        if let Some(detail) = pg.detail() {
            text.push_str(&format!("; {detail}"));
        }
        if let Some(hint) = pg.hint() {
            text.push_str(&format!("; hint: {hint}"));
        }
    }
    match db.code().as_deref() {
        // undefined_function (operator does not exist), datatype_mismatch, invalid text
        Some("42883" | "42804" | "22P02") => format!(
            "{text} (parameters are bound as int8, float8, text, bool or arrays of them; cast in SQL, e.g. $1::timestamp)"
        ),
        Some("25006") => format!("{text} (db::query runs in a read-only transaction)"),
        _ => text,
    }
}

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
        .map_err(pg_err(target))?;
    Ok(Ping {
        address: target.pg_address(),
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
    .map_err(pg_err(target))?;
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
                    .map_err(pg_err(target))?,
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
    .map_err(pg_err(target))?;
    Ok(Size {
        database,
        bytes,
        pretty,
    })
}

#[derive(Debug, Serialize)]
pub struct Missing {
    pub kind: &'static str,
    pub name: String,
    pub fix: String,
}

#[derive(Debug, Serialize)]
pub struct SchemaCheck {
    pub ok: bool,
    pub missing: Vec<Missing>,
}

/// What the procedures need: the deployment's tables and the columns they read or write.
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
            "error_message",
            "started_at",
            "completed_at",
            "created_at",
            "retry_count",
            "updated_at",
        ],
    ),
    (
        "vector_mappings",
        &["id", "content_id", "chunk_id", "vector_collection"],
    ),
];
const REQUIRED_INDEXES: &[&str] = &["idx_processing_jobs_stuck", "idx_vector_mappings_chunk_id"];

pub async fn schema_check(target: &Target) -> Result<SchemaCheck, OpError> {
    let pool = target.pg().await?;
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
         WHERE table_schema = current_schema()",
    )
    .fetch_all(pool)
    .await
    .map_err(pg_err(target))?;
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema()",
    )
    .fetch_all(pool)
    .await
    .map_err(pg_err(target))?;
    let present: BTreeSet<(&str, &str)> = columns
        .iter()
        .map(|(t, c)| (t.as_str(), c.as_str()))
        .collect();
    let tables: BTreeSet<&str> = columns.iter().map(|(t, _)| t.as_str()).collect();
    let fix = "run `opsh migrate`".to_string();
    let mut missing = Vec::new();
    for (table, needed) in REQUIRED {
        if !tables.contains(table) {
            missing.push(Missing {
                kind: "table",
                name: table.to_string(),
                fix: fix.clone(),
            });
            continue;
        }
        for column in *needed {
            if !present.contains(&(table, column)) {
                missing.push(Missing {
                    kind: "column",
                    name: format!("{table}.{column}"),
                    fix: fix.clone(),
                });
            }
        }
    }
    for index in REQUIRED_INDEXES {
        if !indexes.iter().any(|i| i == index) {
            missing.push(Missing {
                kind: "index",
                name: index.to_string(),
                fix: fix.clone(),
            });
        }
    }
    Ok(SchemaCheck {
        ok: missing.is_empty(),
        missing,
    })
}

#[derive(Debug, Serialize)]
pub struct Migration {
    pub version: i64,
    pub description: String,
}

#[derive(Debug, Serialize)]
pub struct Migrated {
    pub dry_run: bool,
    /// Applied by this call (with --dry-run: what would be applied).
    pub applied: Vec<Migration>,
    pub already_applied: usize,
}

pub async fn migrate(target: &Target) -> Result<Migrated, OpError> {
    let pool = target.pg().await?;
    let table_exists: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await
            .map_err(pg_err(target))?;
    let done: Vec<i64> = if table_exists {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
            .map_err(pg_err(target))?
    } else {
        Vec::new()
    };
    let pending: Vec<Migration> = MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !done.contains(&m.version))
        .map(|m| Migration {
            version: m.version,
            description: m.description.to_string(),
        })
        .collect();
    if !target.flags.dry_run {
        MIGRATOR
            .run(pool)
            .await
            .map_err(|e| OpError::backend("postgres", target.pg_address(), e))?;
    }
    Ok(Migrated {
        dry_run: target.flags.dry_run,
        applied: pending,
        already_applied: done.len(),
    })
}

/// Runs a query in a read-only transaction with bound parameters; rows become maps.
pub async fn query(target: &Target, sql: &str, params: Array) -> Result<Vec<Map>, OpError> {
    let pool = target.pg().await?;
    let mut tx = pool.begin().await.map_err(pg_err(target))?;
    sqlx::query("SET TRANSACTION READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(pg_err(target))?;
    let mut q = sqlx::query(AssertSqlSafe(sql.to_string()));
    for (i, p) in params.into_iter().enumerate() {
        q = bind(q, p).map_err(|why| OpError::Invalid(format!("parameter ${}: {why}", i + 1)))?;
    }
    let rows = q.fetch_all(&mut *tx).await.map_err(pg_err(target))?;
    let _ = tx.rollback().await;
    rows.iter()
        .map(row_to_map)
        .collect::<Result<_, _>>()
        .map_err(OpError::Invalid)
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

/// Timestamps without time zone as ISO 8601 text, e.g. "2026-11-26T02:00:00".
pub fn fmt_ts(ts: chrono::NaiveDateTime) -> String {
    ts.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Session-level advisory locks, each held on a connection of its own until released or the
/// process ends, so two unattended runs of one procedure never overlap.
#[derive(Default)]
pub struct Locks(RefCell<HashMap<String, PoolConnection<Postgres>>>);

pub async fn try_lock(target: &Target, locks: &Locks, name: &str) -> Result<bool, OpError> {
    if locks.0.borrow().contains_key(name) {
        return Ok(true);
    }
    let mut conn = target.pg().await?.acquire().await.map_err(pg_err(target))?;
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
        .bind(name)
        .fetch_one(&mut *conn)
        .await
        .map_err(pg_err(target))?;
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
        .map_err(pg_err(target))
}

/// Runs psql on the configured database with the terminal attached and returns its exit code.
/// The password travels in PGPASSWORD, never on the command line where `ps` would show it.
pub fn shell(target: &Target) -> Result<i64, OpError> {
    let url = url::Url::parse(target.settings.get("postgres.url"))
        .map_err(|e| OpError::backend("postgres", target.pg_address(), e))?;
    let mut cmd = std::process::Command::new("psql");
    cmd.env_remove("PGPASSWORD");
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
    let status = target.bridge.foreground(|| cmd.status()).map_err(|e| {
        OpError::backend(
            "postgres",
            target.pg_address(),
            format!("cannot run psql: {e} (install the postgresql-client package)"),
        )
    })?;
    Ok(i64::from(
        status.code().unwrap_or(crate::error::code::UNKNOWN.into()),
    ))
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| text.to_string())
}

pub fn module(target: &Rc<Target>) -> Module {
    let mut m = Module::new();

    let t = target.clone();
    func(
        "ping",
        &["Map"],
        "Connects to PostgreSQL and reports the server version and the round-trip time.\n\
Fails with the address (password redacted) and the cause when the server is unreachable.\n\
```rhai\nlet p = db::ping(); p.server_version.len() > 0 && p.latency_ms >= 0.0\n```",
    )
    .set_into_module(
        &mut m,
        move |ctx: NativeCallContext| -> RhaiResult<Dynamic> {
            to_rhai("db::ping", &block(&ctx, &t, "db::ping", ping(&t))?)
        },
    );

    let t = target.clone();
    func(
        "tables",
        &["Array"],
        "The tables of the current schema, largest first: name, estimated_rows, total_bytes, total_size.\n\
```rhai\ndb::tables().some(|t| t.name == \"processing_jobs\")\n```",
    )
    .set_into_module(&mut m, move |ctx: NativeCallContext| -> RhaiResult<Dynamic> {
        to_rhai("db::tables", &block(&ctx, &t, "db::tables", tables(&t, false))?)
    });

    let t = target.clone();
    func(
        "tables",
        &["options: Map", "Array"],
        "The same; `#{exact: true}` also counts each table's rows exactly (exact_rows).\n\
```rhai\ndb::tables(#{exact: true}).all(|t| t.exact_rows >= 0)\n```",
    )
    .set_into_module(
        &mut m,
        move |ctx: NativeCallContext, opts: Map| -> RhaiResult<Dynamic> {
            let mut opts = Opts::new(&ctx, "db::tables", opts);
            let exact = opts.bool("exact")?.unwrap_or(false);
            opts.finish(&["exact"])?;
            to_rhai(
                "db::tables",
                &block(&ctx, &t, "db::tables", tables(&t, exact))?,
            )
        },
    );

    let t = target.clone();
    func(
        "size",
        &["Map"],
        "The database's size on disk: database, bytes, pretty (as pg_size_pretty).\n\
```rhai\ndb::size().bytes > 0\n```",
    )
    .set_into_module(
        &mut m,
        move |ctx: NativeCallContext| -> RhaiResult<Dynamic> {
            to_rhai("db::size", &block(&ctx, &t, "db::size", size(&t))?)
        },
    );

    let t = target.clone();
    func(
        "schema_check",
        &["Map"],
        "What the procedures need from the schema and is missing (tables, columns, indexes), each\n\
with its fix. `ok` is true when nothing is missing.\n\
```rhai\nlet c = db::schema_check(); c.ok && c.missing.len() == 0\n```",
    )
    .set_into_module(
        &mut m,
        move |ctx: NativeCallContext| -> RhaiResult<Dynamic> {
            to_rhai(
                "db::schema_check",
                &block(&ctx, &t, "db::schema_check", schema_check(&t))?,
            )
        },
    );

    let t = target.clone();
    func(
        "migrate",
        &["Map"],
        "Applies the managed schema's pending migrations (safe on an existing deployment: every\n\
statement is IF NOT EXISTS). With --dry-run it lists them and changes nothing.\n\
```rhai\nlet m = db::migrate(); m.applied.len() == 0 && m.already_applied >= 3\n```",
    )
    .set_into_module(
        &mut m,
        move |ctx: NativeCallContext| -> RhaiResult<Dynamic> {
            to_rhai("db::migrate", &block(&ctx, &t, "db::migrate", migrate(&t))?)
        },
    );

    let t = target.clone();
    func(
        "query",
        &["sql: &str", "Array"],
        "Runs a read-only query; each row is a map of column name to value (NULL is ()).\n\
```rhai\nlet rows = db::query(\"SELECT 1 AS one, 'x' AS t, NULL AS n\"); rows[0].one == 1 && rows[0].t == \"x\" && rows[0].n == ()\n```",
    )
    .set_into_module(&mut m, move |ctx: NativeCallContext, sql: &str| -> RhaiResult<Dynamic> {
        let rows = block(&ctx, &t, "db::query", query(&t, sql, Array::new()))?;
        Ok(rows.into_iter().map(Dynamic::from_map).collect::<Array>().into())
    });

    let t = target.clone();
    func(
        "query",
        &["sql: &str", "params: Array", "Array"],
        "Runs a read-only query with parameters bound to $1, $2, … (never spliced into the SQL).\n\
```rhai\nlet rows = db::query(\"SELECT $1::int + 1 AS n, $2 AS s\", [41, \"hi\"]); rows[0].n == 42 && rows[0].s == \"hi\"\n```",
    )
    .set_into_module(&mut m, move |ctx: NativeCallContext, sql: &str, params: Array| -> RhaiResult<Dynamic> {
        let rows = block(&ctx, &t, "db::query", query(&t, sql, params))?;
        Ok(rows.into_iter().map(Dynamic::from_map).collect::<Array>().into())
    });

    let t = target.clone();
    func(
        "shell",
        &["i64"],
        "Opens psql on the configured database (password passed in the environment, never on\n\
the command line) and returns psql's exit code. Reads commands from stdin when it is not a terminal.\n\
```rhai\ndb::shell() == 0   // the examples test gives psql an empty stdin, so it exits at once\n```",
    )
    .set_into_module(&mut m, move |ctx: NativeCallContext| -> RhaiResult<i64> {
        shell(&t).map_err(|e| crate::ops::support::at(&ctx, crate::ops::support::op_error("db::shell", e)))
    });

    let locks = Rc::new(Locks::default());
    let (t, l) = (target.clone(), locks.clone());
    func(
        "try_lock",
        &["name: &str", "bool"],
        "Takes a PostgreSQL advisory lock by name without waiting; false when another run holds it.\n\
Held until db::unlock or the end of the process: guards unattended runs against overlap.\n\
```rhai\ndb::try_lock(\"example-lock\") && db::unlock(\"example-lock\")\n```",
    )
    .set_into_module(&mut m, move |ctx: NativeCallContext, name: &str| -> RhaiResult<bool> {
        block(&ctx, &t, "db::try_lock", try_lock(&t, &l, name))
    });

    let (t, l) = (target.clone(), locks);
    func(
        "unlock",
        &["name: &str", "bool"],
        "Releases an advisory lock taken by db::try_lock; false when this run did not hold it.\n\
```rhai\ndb::unlock(\"never-taken\") == false\n```",
    )
    .set_into_module(
        &mut m,
        move |ctx: NativeCallContext, name: &str| -> RhaiResult<bool> {
            block(&ctx, &t, "db::unlock", unlock(&t, &l, name))
        },
    );

    m
}
