//! The database dump: pg_dump in the snapshot a connection of its own exported, with every
//! table's rows counted in that same snapshot; `backup::db` (a dump and its .sha256 beside it).

use crate::config::key;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::ops::Target;
use crate::ops::backup::container::dump_in_container;
use crate::ops::backup::manifest::stamp;
use crate::ops::backup::place::{Place, choose_pg_dump};
use crate::ops::backup::private::{
    Unfinished, private_dir_all, private_file, sha256_file, write_private,
};
use crate::ops::backup::spinner::Progress;
use crate::ops::backup::tools::{pg_target, pg_tool, run_tool};
use crate::ops::error::{ErrorKind, OpError};

/// Exact row counts of the current schema's tables.
pub(super) async fn row_counts(
    target: &Target,
    conn: &mut PgConnection,
) -> Result<BTreeMap<String, i64>, OpError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema() ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(target.pg_err())?;
    let mut counts = BTreeMap::new();
    for name in names {
        let sql = format!("SELECT count(*) FROM \"{}\"", name.replace('"', "\"\""));
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(&mut *conn)
            .await
            .map_err(target.pg_err())?;
        counts.insert(name, n);
    }
    Ok(counts)
}

pub(super) async fn connect(target: &Target) -> Result<PgConnection, OpError> {
    // A connection of its own (not the pool's): it holds the exported snapshot open.
    let options: sqlx::postgres::PgConnectOptions = target
        .settings
        .text(key::POSTGRES_URL)
        .parse()
        .map_err(|e| OpError::backend(target.pg_backend(), ErrorKind::Invalid, e))?;
    PgConnection::connect_with(&options.application_name("opsh backup"))
        .await
        .map_err(target.pg_err())
}

#[derive(Debug, Serialize)]
pub struct Dumped {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    pub database: String,
    pub server_version: String,
    pub pg_dump_version: String,
    /// Where pg_dump ran: "host" or "container".
    pub pg_dump_in: &'static str,
    /// The container it ran in (and its image), when it did.
    pub container: Option<String>,
    pub container_image: Option<String>,
    /// Rows per table, counted in the snapshot the dump was taken from.
    pub tables: BTreeMap<String, i64>,
    pub seconds: f64,
}

/// Dumps the configured database to `path` (custom format, 0600), counting every table's rows
/// in the same snapshot while pg_dump runs. pg_dump imports the snapshot this connection
/// exported, so a pg_dump that reached another server (a container that is not postgres.url's)
/// fails instead of dumping something else.
pub(super) async fn dump_to(target: &Target, path: &Path) -> Result<Dumped, OpError> {
    let started = Instant::now();
    let backend = target.pg_backend();
    let (server, tool, place) = choose_pg_dump(target).await?;
    let pg = pg_target(target)?;
    let mut conn = connect(target).await?;
    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut conn)
        .await
        .map_err(target.pg_err())?;
    let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
        .fetch_one(&mut conn)
        .await
        .map_err(target.pg_err())?;
    let progress = Progress::new(format!(
        "pg_dump {} → {} ({})",
        pg.database,
        path.display(),
        place.describe()
    ));
    // Made before anything can fail, so a failure below removes only what this run made.
    let file = private_file(path)?;
    let unfinished = Unfinished::new(path);
    let dumping = async {
        match &place {
            Place::Host => {
                drop(file);
                let mut cmd = pg_tool(&pg, "pg_dump", true);
                cmd.arg("--format=custom")
                    .arg(format!("--snapshot={snapshot}"))
                    .arg(format!("--file={}", path.display()));
                run_tool(backend, "pg_dump", cmd).await?;
                Ok(None)
            }
            Place::Container(c) => dump_in_container(target, c, &snapshot, file)
                .await
                .map(Some),
        }
    };
    let (dumped, counted) = tokio::join!(dumping, row_counts(target, &mut conn));
    let _ = sqlx::raw_sql("COMMIT").execute(&mut conn).await;
    let _ = conn.close().await;
    let hashed = match (dumped, &counted) {
        (Ok(hashed), Ok(_)) => hashed,
        (Err(e), _) => return Err(e),
        (Ok(_), Err(e)) => return Err(e.clone()),
    };
    let (bytes, sha256) = match hashed {
        Some(h) => h,
        None => {
            progress.set("sha256 of the dump");
            sha256_file(path).await?
        }
    };
    let container = place.container();
    unfinished.keep();
    Ok(Dumped {
        file: path.display().to_string(),
        bytes,
        sha256,
        database: pg.database,
        server_version: server,
        pg_dump_version: tool,
        pg_dump_in: if container.is_some() {
            "container"
        } else {
            "host"
        },
        container: container.map(|c| c.name.clone()),
        container_image: container.map(|c| c.image.clone()),
        tables: counted?,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// backup::db: the database alone, `<dir>/<database>-<stamp>.dump` plus a `.sha256` beside it
/// (the `sha256sum -c` format), both 0600.
pub async fn db(target: &Target, dir: &Path) -> Result<Dumped, OpError> {
    private_dir_all(dir)?;
    let pg = pg_target(target)?;
    let mut name = format!("{}-{}.dump", pg.database, stamp());
    for _ in 0..3 {
        if !dir.join(&name).exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        name = format!("{}-{}.dump", pg.database, stamp());
    }
    let path = dir.join(&name);
    let dumped = dump_to(target, &path).await?;
    write_private(
        &dir.join(format!("{name}.sha256")),
        format!("{}  {name}\n", dumped.sha256).as_bytes(),
    )?;
    Ok(dumped)
}
