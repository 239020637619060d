//! `backup::` — verified backups and restores of the deployment's data.
//!
//! `all` writes a timestamped folder (0700, files 0600) with the database in pg_dump's custom
//! format, the Redis RDB, the compose file and opsh's configuration (secrets left out) and a
//! manifest.json with each file's size and sha256, tool and server versions and the row count of
//! every table, counted in the very snapshot pg_dump dumps (`pg_export_snapshot` +
//! `pg_dump --snapshot`), so a restore can be checked against it exactly. `verify` re-checks a
//! folder; `restore_db` refuses a missing, truncated or corrupt dump before it touches anything
//! and restores in one transaction; `prune` deletes old backups through the destructive helper.
//!
//! Passwords reach pg_dump, pg_restore and psql only in PGPASSWORD, never on their command line
//! (where `ps` shows it) and never in a backup file.
//!
//! Where the tools run (setting backup.pg_tools): "auto" takes the host's pg_dump when it is at
//! least as new as the server, else the postgres service's container (found by its Compose
//! labels), and the host's pg_restore/psql unless they are missing or too old for the archive;
//! "host" and "container" fix the place. In the container they run through an Engine API exec:
//! pg_dump's stdout streams into the dump file (hashed on the way, never held in memory), a dump
//! to restore streams into pg_restore's stdin; they reach the server on its own unix socket
//! (the directory and port the server reports over postgres.url) as the URL's user, the
//! password in the exec's environment. The Redis RDB comes from the data dir when it is
//! readable here, else out of the redis service's container (the Engine's archive endpoint).
//!
//! One concept per file, lowest first (each imports only those above it):
//! - `private`: 0700 folders, 0600 files, removed unless finished, sha256 of files and streams;
//! - `spinner`: the progress spinner on a terminal's stderr;
//! - `manifest`: the names in a backup, the manifest's entries, `latest`;
//! - `tools`: the PostgreSQL client tools on this host, their and the server's versions;
//! - `container`: the tools inside the postgres container, pg_dump streamed out of an exec;
//! - `place`: host or container (backup.pg_tools) and running a tool on a file at either;
//! - `dump`: pg_dump with row counts in the same snapshot, `db`;
//! - `redis`: BGSAVE and the RDB; `shards`: a Qdrant cluster's shard snapshots, saved and
//!   recovered; `snapshots`: Qdrant snapshots and `restore_qdrant`;
//! - `copies`: the compose file (secrets masked) and the configuration;
//! - `all`, `verify`, `prune`, `restore` (`restore_db`): the operations; `specs`: their specs.

use std::path::{Path, PathBuf};

use crate::ops::spec::Registrar;

mod all;
mod container;
mod copies;
mod dump;
mod manifest;
mod place;
mod private;
mod prune;
mod redis;
mod restore;
mod shards;
mod snapshots;
mod specs;
mod spinner;
mod tools;
mod verify;

pub use all::{Backup, all};
pub use dump::{Dumped, db};
pub use manifest::{FORMAT, FileEntry, Skipped, latest};
pub use prune::{Pruned, prune};
pub use restore::{Restored, restore_db};
pub use shards::ShardRestored;
pub use snapshots::{QdrantRestored, restore_qdrant};
pub use verify::{Verified, verify};

use crate::ops::error::OpError;
use specs::{ALL, DB, LATEST, PRUNE, RESTORE_DB, RESTORE_QDRANT, VERIFY};

fn dir_of(c: &crate::ops::spec::Call, name: &str) -> Result<PathBuf, OpError> {
    Ok(expand_home(&c.str(name)?))
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
    }
}

pub fn register(reg: &mut Registrar) {
    reg.add(&RESTORE_QDRANT, |c| {
        let dir = dir_of(c, "dir")?;
        let collection = c.str("collection")?;
        c.block(restore_qdrant(c.target, &dir, &collection))
    });
    reg.add(&DB, |c| {
        let dir = dir_of(c, "dir")?;
        c.block(db(c.target, &dir))
    });
    reg.add(&ALL, |c| {
        let dir = dir_of(c, "dir")?;
        c.block(all(c.target, &dir))
    });
    reg.add(&VERIFY, |c| {
        let dir = dir_of(c, "dir")?;
        c.block(verify(c.target, &dir))
    });
    reg.add(&LATEST, |c| Ok(latest(&dir_of(c, "dir")?)?));
    reg.add(&PRUNE, |c| {
        let dir = dir_of(c, "dir")?;
        c.block(prune(
            c.target,
            &dir,
            c.int("keep_last")?,
            c.int("keep_days")?,
        ))
    });
    reg.add(&RESTORE_DB, |c| {
        let file = dir_of(c, "file")?;
        c.block(restore_db(c.target, &file))
    });
}
