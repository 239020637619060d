//! The specs of `backup::` (signature, options, doc, examples), registered in mod.rs.

use crate::config::key;
use crate::ops::spec::{Default, Example, Kind, Opt, Param, Spec};

pub(super) static DB: Spec = Spec {
    module: "backup",
    name: "db",
    params: &[],
    options: &[Opt::new(
        "dir",
        Kind::Str,
        Default::Setting(key::BACKUP_DIR.name()),
        "where the dump goes (made 0700 when missing)",
    )],
    returns: "Map",
    doc: "Dumps the configured database in pg_dump's custom format to <dir>/<database>-<UTC \
          stamp>.dump (0600) with a .sha256 beside it. pg_dump runs on this host when it is at \
          least as new as the server, else in the postgres service's container (an Engine API \
          exec, its output streamed into the file; the password only in the exec's \
          environment); backup.pg_tools = \"host\" or \"container\" fixes the place. Returns \
          file, bytes, sha256, database, server_version, pg_dump_version, pg_dump_in (\"host\" \
          or \"container\"), container, container_image, tables (rows per table, counted in the \
          dump's own snapshot), seconds.",
    examples: &[Example::new(
        r#"let d = backup::db(#{dir: "backups"}); [d.tables.processing_jobs, d.sha256.len()]"#,
        "[8, 64]",
    )],
};

pub(super) static ALL: Spec = Spec {
    module: "backup",
    name: "all",
    params: &[],
    options: &[Opt::new(
        "dir",
        Kind::Str,
        Default::Setting(key::BACKUP_DIR.name()),
        "where the backup folder goes",
    )],
    returns: "Map",
    doc: "Backs up the deployment into <dir>/opsh-backup-<UTC stamp>/ (0700, files 0600): \
          postgres.dump (custom format; pg_dump on this host or in the postgres container, as \
          backup::db), redis.rdb (BGSAVE waited on, then copied from the server's data dir when \
          it is readable here, else out of the redis service's container), a snapshot per \
          Qdrant collection (made, downloaded, checked against Qdrant's checksum, then deleted \
          on the server; against a Qdrant cluster one snapshot per shard, all at once, each \
          from a peer holding an Active replica of it, and a shard that cannot be saved fails \
          the backup naming collection, shard and peer), the compose file and opsh-config.json with secrets masked, and \
          manifest.json (each file's size and sha256, tool and server versions, where pg_dump \
          ran and where the RDB came from, row counts, opsh version, timestamps). What could \
          not be included is listed in `skipped`. Returns dir, files, skipped, tables, \
          pg_dump_in, pg_dump_container, redis, qdrant, total_bytes, seconds.",
    examples: &[Example::new(
        r#"let b = backup::all(#{dir: "backups"}); [b.files[0].name, b.tables.processing_jobs]"#,
        r#"["postgres.dump", 8]"#,
    )],
};

pub(super) static VERIFY: Spec = Spec {
    module: "backup",
    name: "verify",
    params: &[Param::new(
        "dir",
        Kind::Str,
        "a backup folder made by backup::all",
    )],
    options: &[],
    returns: "Map",
    doc: "Checks a backup folder: every file's size and sha256 against the manifest, files \
          missing or not listed, permissions, the manifest's completeness (for a Qdrant \
          cluster's backup: every shard of each collection listed, each shard's file among the \
          files, problems on it naming collection and shard), and that pg_restore \
          can read the dump (the host's, or the postgres container's when the host has none or \
          one too old for the archive; see backup.pg_tools). Returns dir, ok, files_checked and \
          problems (one line each).",
    examples: &[Example::new(
        r#"let b = backup::all(#{dir: "backups"}); let v = backup::verify(b.dir); [v.ok, v.problems]"#,
        "[true, []]",
    )],
};

/// The folder the backup folders are in (latest, prune).
pub(super) const BACKUP_DIR: Opt = Opt::new(
    "dir",
    Kind::Str,
    Default::Setting(key::BACKUP_DIR.name()),
    "the backup dir",
);

pub(super) static LATEST: Spec = Spec {
    module: "backup",
    name: "latest",
    params: &[],
    options: &[BACKUP_DIR],
    returns: "Map",
    doc: "The manifest of the newest backup-all folder in dir (postgres.tables row counts, \
          qdrant.snapshots with points, finished_at, and dir), or () when there is none: what \
          monthly-check compares this month's sizes with.",
    examples: &[Example::new(
        r#"backup::latest(#{dir: "no-backups-here"})"#,
        "null",
    )],
};

pub(super) static PRUNE: Spec = Spec {
    module: "backup",
    name: "prune",
    params: &[],
    options: &[
        BACKUP_DIR,
        Opt::new(
            "keep_last",
            Kind::Int,
            Default::Setting(key::BACKUP_KEEP_LAST.name()),
            "keep the newest this many of each kind (folders, dumps)",
        ),
        Opt::new(
            "keep_days",
            Kind::Int,
            Default::Setting(key::BACKUP_KEEP_DAYS.name()),
            "keep those younger than this many days",
        ),
    ],
    returns: "Map",
    doc: "Deletes old backups (opsh-backup-* folders and <database>-<stamp>.dump files) that \
          neither rule keeps, after confirmation (`yes`, or --yes); --dry-run lists them. \
          Returns dry_run, dir, kept, deleted (names), bytes_freed.",
    examples: &[Example::new(
        r#"backup::prune(#{dir: "backups"}).deleted"#,
        "[]",
    )],
};

pub(super) static RESTORE_DB: Spec = Spec {
    module: "backup",
    name: "restore_db",
    params: &[Param::new(
        "file",
        Kind::Str,
        "a .dump (custom format), a plain .sql dump, or a backup folder",
    )],
    options: &[],
    returns: "Map",
    doc: "Restores the configured database from a dump. First checks it and refuses a missing, \
          truncated or corrupt one before touching anything (sha256 against the manifest or the \
          .sha256 beside it; pg_restore must read it; a plain .sql must end as pg_dump ends \
          one); then asks for confirmation (`yes`, or --yes; --dry-run stops here) and restores \
          in one transaction (pg_restore --single-transaction --clean --if-exists, or psql -1 \
          with ON_ERROR_STOP). pg_restore and psql run on this host, or in the postgres \
          container with the file on their stdin when the host has none or one too old for the \
          archive (backup.pg_tools). Returns dry_run, file, format, checks, tables_in_dump, \
          tables (rows after), matches_manifest, tools_in (\"host\" or \"container\"), \
          container, seconds.",
    examples: &[Example::new(
        r#"let k = (); try { backup::restore_db("nowhere.dump") } catch (e) { k = e.kind } k"#,
        r#""not_found""#,
    )],
};

pub(super) static RESTORE_QDRANT: Spec = Spec {
    module: "backup",
    name: "restore_qdrant",
    params: &[
        Param::new(
            "dir",
            Kind::Str,
            "a backup-all folder (its manifest names the snapshot) or a .snapshot file",
        ),
        Param::new("collection", Kind::Str, "the collection to replace"),
    ],
    options: &[],
    returns: "Map",
    doc: "Replaces a Qdrant collection with its snapshot from a backup: the file's size and sha256 \
          are checked against the manifest first (a damaged one is refused), then, after \
          confirmation (`yes`, or --yes; --dry-run stops here), it is streamed from the file \
          through Qdrant's REST API (multipart POST /collections/{c}/snapshots/upload, priority \
          snapshot, with its checksum). A Qdrant cluster's backup (one snapshot per shard) is \
          restored shard by shard: every shard file checked first; the collection created with \
          the manifest's shards, replication factor and vectors when it does not exist (one with \
          another shard count is refused); each shard uploaded to a peer holding an Active \
          replica (POST /collections/{c}/shards/{id}/snapshots/upload, priority snapshot, all \
          at once); then it waits until Qdrant has copied each recovered shard to its other \
          replicas (every peer sees them Active, no transfer left, the same points) and counts. \
          Returns dry_run, collection, file, bytes, sha256 (() for a cluster's backup), \
          points_before, points_after, matches_manifest (the manifest's point count equals the \
          restored one); for a cluster's backup also created, shards (shard_id, peer_id it was \
          recovered on, file, bytes, points) and replicas_behind (replicas on peers that do not \
          answer, given the shard by Qdrant when they are back).",
    examples: &[Example::new(
        r#"let k = (); try { backup::restore_qdrant("nowhere", "youtube_content") } catch (e) { k = e.kind } k"#,
        r#""not_found""#,
    )],
};
