//! backup-all and backup::restore_qdrant against a Qdrant cluster (the double's three peers,
//! collection youtube_content in 3 shards with 2 replicas each), through the real binary with
//! the real PostgreSQL and Redis of tools/with-services: every shard is saved and the shards'
//! points add up to the collection's; a shard nobody can give fails the backup naming it; a
//! damaged shard file fails verify and is refused by restore; restore into an emptied and into
//! a dropped collection gives the manifest's count again.

#[path = "support/seed.rs"]
mod seed;
mod support;

use std::path::{Path, PathBuf};

use qdrant_client::qdrant::{
    CollectionClusterInfoRequest, CreateCollectionBuilder, DeletePointsBuilder, Distance, Filter,
    PointId, PointStruct, UpsertPointsBuilder, VectorParamsBuilder,
};
use qdrant_double::{Cluster, Options, QdrantDouble};
use seed::{mode, redis_url};
use serde_json::{Value, json};
use support::TestDb;

const COLLECTION: &str = "youtube_content";
/// Points seeded: numbers and UUIDs, so every shard holds some of each.
const NUMBERS: u64 = 40;
const UUIDS: u128 = 20;

/// The cluster, the test's database and a working dir; opsh pointed at peer 0, told the other
/// peers' REST URLs by id (their p2p host's port is not their REST port here).
struct Site {
    cluster: Cluster,
    dir: tempfile::TempDir,
    db_url: String,
    peers_json: String,
}

impl Site {
    fn new(db: &TestDb) -> Site {
        let cluster = QdrantDouble::start_cluster(Options::default(), 3).expect("double cluster");
        let peers: serde_json::Map<String, Value> = cluster
            .peers()
            .iter()
            .map(|p| (p.peer_id.to_string(), Value::String(p.rest_url())))
            .collect();
        let dir = tempfile::tempdir().expect("temp dir");
        support::write_file(&dir.path().join("docker-compose.yml"), "services: {}\n");
        let site = Site {
            cluster,
            dir,
            db_url: db.url.clone(),
            peers_json: Value::Object(peers).to_string(),
        };
        site.seed();
        site
    }

    fn grpc(&self) -> String {
        self.cluster.peers()[0].grpc_url()
    }

    fn seed(&self) {
        let rt = seed::runtime();
        let client = seed::client(&self.grpc());
        rt.block_on(async {
            client
                .create_collection(
                    CreateCollectionBuilder::new(COLLECTION)
                        .vectors_config(VectorParamsBuilder::new(4, Distance::Cosine))
                        .shard_number(3)
                        .replication_factor(2),
                )
                .await
                .expect("create");
            let ids = (1..=NUMBERS).map(PointId::from).chain((0..UUIDS).map(|i| {
                PointId::from(uuid::Uuid::from_u128((i + 1) * 0x9e37_79b9_7f4a_7c15).to_string())
            }));
            let points: Vec<PointStruct> = ids
                .enumerate()
                .map(|(i, id)| {
                    PointStruct::new(
                        id,
                        vec![1.0, i as f32, 0.5, 0.25],
                        [("content_id", (i as i64).into())],
                    )
                })
                .collect();
            client
                .upsert_points(UpsertPointsBuilder::new(COLLECTION, points).wait(true))
                .await
                .expect("upsert");
        });
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn run(&self, args: &[&str]) -> support::Run {
        let mut cmd = std::process::Command::new(support::BIN);
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("DATABASE_URL", &self.db_url)
            .env("REDIS_URL", redis_url())
            .env("QDRANT_URL", self.grpc())
            .env("OPSH_QDRANT_REST_URL", self.cluster.peers()[0].rest_url())
            .env("OPSH_QDRANT_PEERS", &self.peers_json)
            .stdin(std::process::Stdio::null());
        support::Run::from(cmd.output().expect("run opsh"))
    }

    /// Runs Rhai code with --json and --yes; its value.
    fn eval(&self, code: &str) -> Value {
        let run = self.run(&["--json", "--yes", "-e", code]);
        run.code(0);
        run.json()
    }

    fn count(&self) -> u64 {
        self.eval(&format!(r#"qdrant::count("{COLLECTION}")"#))
            .as_u64()
            .expect("count")
    }

    /// backup-all's report, the folder and its manifest.
    fn backup(&self) -> (Value, PathBuf, Value) {
        let run = self.run(&["--json", "backup-all", "dir=backups"]);
        run.code(0);
        let report = run.report();
        let dir = self.path(report["data"]["dir"].as_str().expect("dir"));
        let manifest = read_manifest(&dir);
        (report, dir, manifest)
    }

    /// The peers holding a replica of `shard`, as the cluster's consensus (peer 0) has them.
    fn holders(&self, shard: u32) -> Vec<u64> {
        let info = seed::runtime().block_on(async {
            seed::client(&self.grpc())
                .collection_cluster_info(CollectionClusterInfoRequest {
                    collection_name: COLLECTION.into(),
                })
                .await
                .expect("cluster info")
        });
        let mut peers: Vec<u64> = info
            .local_shards
            .iter()
            .filter(|l| l.shard_id == shard)
            .map(|_| info.peer_id)
            .chain(
                info.remote_shards
                    .iter()
                    .filter(|r| r.shard_id == shard)
                    .map(|r| r.peer_id),
            )
            .collect();
        peers.sort();
        peers
    }

    fn restore(&self, dir: &Path) -> Value {
        self.eval(&format!(
            r#"backup::restore_qdrant({:?}, "{COLLECTION}")"#,
            dir.display().to_string()
        ))
    }
}

fn read_manifest(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).expect("manifest"))
        .expect("manifest JSON")
}

/// The manifest's entry of the collection.
fn entry(manifest: &Value) -> &Value {
    manifest["qdrant"]["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .find(|s| s["collection"] == COLLECTION)
        .expect("collection entry")
}

/// backup-all saves each of the 3 shards once, from a peer holding it, and their points add up
/// to the collection's; restore brings the count back into an emptied and a dropped collection
/// (created again with 3 shards and 2 replicas).
#[test]
fn backup_all_of_a_cluster_saves_every_shard_and_restore_gives_the_count_back() {
    let db = TestDb::new();
    let site = Site::new(&db);
    let total = NUMBERS + UUIDS as u64;
    assert_eq!(site.count(), total);

    let (report, dir, manifest) = site.backup();
    assert_eq!(report["status"], "ok", "{report}");
    let e = entry(&manifest);
    assert_eq!(
        (&e["points"], &e["shard_count"], &e["replication_factor"]),
        (&json!(total), &json!(3), &json!(2)),
        "{e}"
    );
    assert_eq!(
        e["vectors"],
        json!([{"name": "", "size": 4, "distance": "Cosine"}])
    );
    let shards = e["shards"].as_array().expect("shards");
    let ids: Vec<u64> = shards
        .iter()
        .map(|s| s["shard_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [0, 1, 2]);
    let sum: u64 = shards.iter().map(|s| s["points"].as_u64().unwrap()).sum();
    assert_eq!(
        sum, total,
        "the shards' points add up to the collection's: {e}"
    );
    let peer_ids: Vec<u64> = site.cluster.peers().iter().map(|p| p.peer_id).collect();
    let files = manifest["files"].to_string();
    for s in shards {
        assert!(s["points"].as_u64().unwrap() > 0, "{s}");
        assert!(peer_ids.contains(&s["peer_id"].as_u64().unwrap()), "{s}");
        assert_eq!(s["sha256"], s["qdrant_checksum"], "{s}");
        assert_eq!(s["checksum_verified"], true, "{s}");
        assert_eq!(s["deleted_on_server"], true, "{s}");
        let file = s["file"].as_str().unwrap();
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
        assert!(files.contains(file), "{file} among {files}");
    }
    // The shards are spread over the peers, one each (3 shards, 3 peers, 2 replicas each).
    let mut used: Vec<u64> = shards
        .iter()
        .map(|s| s["peer_id"].as_u64().unwrap())
        .collect();
    used.sort();
    used.dedup();
    assert_eq!(used.len(), 3, "{e}");
    // backup-all's own verify passed and its report says what a cluster's backup holds.
    let checks = report["checks"].to_string();
    assert!(
        checks.contains("60 points in 3 shards (replication 2), 3 shard snapshots"),
        "{checks}"
    );
    let verify = site.eval(&format!("backup::verify({:?})", dir.display().to_string()));
    assert_eq!(
        (&verify["ok"], &verify["problems"]),
        (&json!(true), &json!([]))
    );

    // Emptied: every point deleted, the collection left as it is.
    seed::runtime().block_on(async {
        seed::client(&site.grpc())
            .delete_points(
                DeletePointsBuilder::new(COLLECTION)
                    .points(Filter::default())
                    .wait(true),
            )
            .await
            .expect("delete")
    });
    assert_eq!(site.count(), 0);
    let r = site.restore(&dir);
    assert_eq!(
        (
            &r["points_before"],
            &r["points_after"],
            &r["matches_manifest"],
            &r["created"]
        ),
        (&json!(0), &json!(total), &json!(true), &json!(false)),
        "{r}"
    );
    let recovered_on: Vec<u64> = r["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["peer_id"].as_u64().expect("recovered on a peer"))
        .collect();
    assert_eq!(recovered_on.len(), 3, "{r}");
    assert_eq!(site.count(), total);

    // Dropped: created again from the manifest, then each shard recovered.
    seed::runtime().block_on(async {
        seed::client(&site.grpc())
            .delete_collection(COLLECTION)
            .await
            .expect("drop")
    });
    let r = site.restore(&dir);
    assert_eq!(
        (
            &r["points_before"],
            &r["points_after"],
            &r["matches_manifest"],
            &r["created"]
        ),
        (&json!(0), &json!(total), &json!(true), &json!(true)),
        "{r}"
    );
    assert_eq!(site.count(), total);
    let params = seed::runtime().block_on(async {
        seed::client(&site.grpc())
            .collection_info(COLLECTION)
            .await
            .expect("info")
            .result
            .and_then(|i| i.config)
            .and_then(|c| c.params)
            .expect("params")
    });
    assert_eq!(
        (params.shard_number, params.replication_factor),
        (3, Some(2))
    );
}

/// A shard whose every replica is Dead cannot be saved: backup-all is critical, names the
/// collection, the shard and its replicas, and keeps no backup folder at all.
#[test]
fn a_shard_without_an_active_replica_fails_the_backup_and_keeps_nothing() {
    let db = TestDb::new();
    let site = Site::new(&db);
    let (_, _, manifest) = site.backup();
    assert_eq!(entry(&manifest)["shards"].as_array().unwrap().len(), 3);
    let holders = site.holders(1);
    assert_eq!(holders.len(), 2, "{holders:?}");
    for peer in &holders {
        site.cluster.set_replica_state(COLLECTION, 1, *peer, "Dead");
    }
    let before: Vec<_> = std::fs::read_dir(site.path("backups")).unwrap().collect();
    let run = site.run(&["--json", "backup-all", "dir=backups"]);
    run.code(2);
    let report = run.report();
    let text = report.to_string();
    assert!(
        text.contains(&format!(
            "collection `{COLLECTION}` shard 1: no Active replica (peer {} Dead, peer {} Dead)",
            holders[0], holders[1]
        )),
        "{text}"
    );
    assert!(text.contains("no backup was kept"), "{text}");
    assert!(
        !text.contains("\"verify\""),
        "no verify of a backup that is not there: {text}"
    );
    let after: Vec<_> = std::fs::read_dir(site.path("backups")).unwrap().collect();
    assert_eq!(after.len(), before.len(), "no new folder");
}

/// A holder that does not answer: its shard is taken from the other Active replica; when that
/// one is Dead the backup fails naming the collection, the shard, the peer and why.
#[test]
fn a_peer_that_does_not_answer_is_passed_over_for_another_replica_or_named() {
    let db = TestDb::new();
    let site = Site::new(&db);
    let stopped = site.cluster.peers()[2].peer_id;
    site.cluster.stop_peer(2);
    let (report, _, manifest) = site.backup();
    assert_eq!(report["status"], "ok", "{report}");
    let e = entry(&manifest);
    for s in e["shards"].as_array().unwrap() {
        assert_ne!(s["peer_id"], json!(stopped), "{s}");
    }
    let sum: u64 = e["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["points"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, e["points"].as_u64().unwrap());

    // A shard the stopped peer holds, its other replica Dead: nobody can give it.
    let shard = (0..3)
        .find(|s| site.holders(*s).contains(&stopped))
        .expect("a shard on the stopped peer");
    let other = *site
        .holders(shard)
        .iter()
        .find(|p| **p != stopped)
        .expect("its other replica");
    site.cluster
        .set_replica_state(COLLECTION, shard, other, "Dead");
    let run = site.run(&["--json", "backup-all", "dir=backups"]);
    run.code(2);
    let text = run.report().to_string();
    // The cluster still calls the stopped peer's replica Active (no write has touched it), so
    // it is tried, and what happened there is said.
    assert!(
        text.contains(&format!(
            "collection `{COLLECTION}` shard {shard} on peer {stopped}: REST {}: connection refused",
            site.cluster.peers()[2].rest_url()
        )),
        "{text}"
    );
    assert!(text.contains("no backup was kept"), "{text}");
}

/// A shard file changed after the backup: verify names it and its shard; restore refuses it
/// before touching the collection.
#[test]
fn a_damaged_shard_file_fails_verify_and_restore_naming_it() {
    let db = TestDb::new();
    let site = Site::new(&db);
    let (_, dir, manifest) = site.backup();
    let file = entry(&manifest)["shards"][1]["file"]
        .as_str()
        .unwrap()
        .to_string();
    let path = dir.join(&file);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let v = site.eval(&format!("backup::verify({:?})", dir.display().to_string()));
    assert_eq!(v["ok"], false);
    let problems = v["problems"].to_string();
    assert!(
        problems.contains(&format!(
            "{file} (collection `{COLLECTION}` shard 1): sha256 "
        )),
        "{problems}"
    );

    let before = site.count();
    let run = site.run(&[
        "--yes",
        "-e",
        &format!(
            r#"backup::restore_qdrant({:?}, "{COLLECTION}")"#,
            dir.display().to_string()
        ),
    ]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("shard 1:") && run.stderr.contains("refusing a damaged snapshot"),
        "{}",
        run.stderr
    );
    assert_eq!(site.count(), before);
}
