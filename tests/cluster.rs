//! A distributed Qdrant through the binary: qdrant::cluster and qdrant::shards as every peer
//! answers them, each health rule as qdrant-stats, test-health and check-data report it, and
//! check-data's streaming merge on 3 shards giving the very report a single node gives for the
//! same data (scroll without order_by returns global id order across shards). Against the Qdrant
//! double's cluster (3 peers in one process, its answers pinned to Qdrant 1.18.3 in its own
//! tests) and real PostgreSQL.

#[path = "support/seed.rs"]
mod seed;
mod support;

use pretty_assertions::assert_eq;
use qdrant_double::{Cluster, Options, QdrantDouble};
use serde_json::{Value, json};
use support::{Opsh, TestDb};

const BASE_SQL: &str = include_str!("fixtures/examples.sql");

/// Rows and points of the content pair: numbers and UUIDs mixed (every third UUID row written as
/// its MD5-hex form), every 25th row without its point (missing), and orphans of both kinds.
struct Data {
    rows: Vec<String>,
    points: Vec<Value>,
}

fn uuid_of(i: u64) -> uuid::Uuid {
    uuid::Uuid::from_u128(u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
}

fn data() -> Data {
    let mut rows = Vec::new();
    let mut points = Vec::new();
    for i in 1..=240u64 {
        let (row, point) = if i % 2 == 0 {
            (i.to_string(), json!(i))
        } else {
            let u = uuid_of(i);
            let text = if i % 3 == 0 {
                u.simple().to_string()
            } else {
                u.to_string()
            };
            (text, json!(u.to_string()))
        };
        rows.push(row);
        if i % 25 != 0 {
            points.push(json!({"id": point, "payload": {"content_id": 1}}));
        }
    }
    for k in 0..7u64 {
        points.push(json!({"id": 10_000 + k, "payload": {"content_id": 1}}));
        points.push(json!({"id": uuid_of(50_000 + k).to_string(), "payload": {"content_id": 1}}));
    }
    Data { rows, points }
}

fn database(d: &Data) -> TestDb {
    let db = TestDb::new();
    db.exec(BASE_SQL);
    let values: Vec<String> = d
        .rows
        .iter()
        .enumerate()
        .map(|(i, id)| format!("(1, '{id}', 'youtube_content', 'c', {})", i + 10))
        .collect();
    db.exec(&format!(
        "INSERT INTO vector_mappings (content_id, chunk_id, vector_collection, chunk_text, chunk_order) VALUES {};",
        values.join(", ")
    ));
    db
}

fn spec(d: &Data) -> Value {
    json!({"collections": {
        "youtube_content": {"size": 4, "points": d.points},
        "youtube_summaries": {"size": 4, "points": [
            {"id": "1c2d3e4f-5a6b-5c7d-8e9f-0a1b2c3d4e5f", "payload": {"content_id": 1}}
        ]}
    }})
}

/// A 3-peer double cluster seeded through peer 0 (3 shards each: Qdrant's default shard_number
/// in distributed mode is the number of peers), and the settings that reach it.
struct Distributed {
    db: TestDb,
    cluster: Cluster,
}

impl Distributed {
    fn new() -> Distributed {
        let d = data();
        let cluster = QdrantDouble::start_cluster(Options::default(), 3).expect("a cluster");
        seed::seed(&cluster.peers()[0].grpc_url(), &spec(&d));
        Distributed {
            db: database(&d),
            cluster,
        }
    }

    fn ids(&self) -> Vec<u64> {
        self.cluster.peers().iter().map(|p| p.peer_id).collect()
    }

    /// opsh configured with peer 0; every peer's REST address named in qdrant.peers (they
    /// share a host, each on its own port).
    fn opsh(&self) -> Opsh {
        let peers = &self.cluster.peers();
        let named: serde_json::Map<String, Value> = peers
            .iter()
            .map(|p| (p.peer_id.to_string(), json!(p.rest_url())))
            .collect();
        Opsh::new()
            .db(&self.db)
            .env("QDRANT_URL", &peers[0].grpc_url())
            .env("OPSH_QDRANT_REST_URL", &peers[0].rest_url())
            .env("OPSH_QDRANT_PEERS", &Value::Object(named).to_string())
    }

    fn eval(&self, code: &str) -> Value {
        let run = self.opsh().args(["--json", "--yes", "-e", code]).run();
        run.code(0);
        run.json()
    }

    /// qdrant::cluster_health() as (level, check, collection, shard, peer, text).
    fn findings(&self) -> Vec<(String, String, Value, Value, Value, String)> {
        let v = self.eval("qdrant::cluster_health()");
        v.as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["level"].as_str().unwrap().to_string(),
                    f["check"].as_str().unwrap().to_string(),
                    f["collection"].clone(),
                    f["shard"].clone(),
                    f["peer"].clone(),
                    f["text"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// A procedure's exit code and its report's lines as "status name: detail".
    fn procedure(&self, name: &str) -> (i32, Vec<String>) {
        let run = self.opsh().args(["--json", name]).run();
        let report = run.report();
        let lines = report["checks"]
            .as_array()
            .unwrap_or_else(|| panic!("no checks: {report}"))
            .iter()
            .map(|c| format!("{} {}: {}", c["status"], c["name"], c["detail"]).replace('"', ""))
            .collect();
        (run.code, lines)
    }
}

/// The lines of the checks whose name starts with `name`.
fn named<'a>(lines: &'a [String], name: &str) -> Vec<&'a str> {
    lines
        .iter()
        .filter(|l| {
            l.split_once(' ')
                .is_some_and(|(_, rest)| rest.starts_with(name))
        })
        .map(String::as_str)
        .collect()
}

#[test]
fn cluster_and_shards_show_every_peer_and_where_each_shard_lives() {
    let env = Distributed::new();
    let ids = env.ids();
    let c = env.eval("qdrant::cluster()");
    assert_eq!(c["enabled"], true);
    assert_eq!(c["peer_id"], ids[0]);
    assert_eq!(c["leader"], ids[0]);
    assert_eq!(c["consensus"], "working");
    let mut want: Vec<Value> = env
        .cluster
        .peers()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            json!({"id": p.peer_id, "uri": p.p2p_uri(), "rest_url": p.rest_url(),
                   "this": i == 0, "leader": i == 0})
        })
        .collect();
    want.sort_by_key(|p| p["id"].as_u64());
    assert_eq!(c["peers"], Value::Array(want));
    assert_eq!(c["send_failures"], json!([]));

    // Each shard on the peer the double places it (one replica each: replication_factor 1),
    // its points counted by that peer, and the three adding up to the collection's count.
    let s = env.eval(r#"qdrant::shards("youtube_content")"#);
    assert_eq!(s["shard_count"], 3);
    assert_eq!(s["unanswered"], json!([]));
    assert_eq!(s["transfers"], json!([]));
    let shards = s["shards"].as_array().unwrap();
    let mut total = 0;
    for (i, shard) in shards.iter().enumerate() {
        assert_eq!(shard["shard_id"], i);
        let replicas = shard["replicas"].as_array().unwrap();
        assert_eq!(replicas.len(), 1, "{shard}");
        assert_eq!(replicas[0]["peer_id"], ids[i]);
        assert_eq!(replicas[0]["state"], "Active");
        assert_eq!(replicas[0]["points"], shard["points"]);
        let points = shard["points"].as_u64().unwrap();
        assert!(points > 0, "every shard holds some of 245 points: {shard}");
        total += points;
    }
    assert_eq!(total, 245);
    assert_eq!(env.eval(r#"qdrant::count("youtube_content")"#), 245);

    // The REPL's tables show the fields in the structs' order, nested lists too.
    let text = env
        .opsh()
        .stdin("qdrant::shards(\"youtube_content\").shards\nqdrant::cluster().peers\n")
        .run();
    text.code(0);
    let headers: Vec<&str> = text.stdout.lines().filter(|l| l.contains(" ┆ ")).collect();
    let header = headers
        .iter()
        .find(|l| l.contains("shard_id"))
        .unwrap_or_else(|| panic!("{}", text.stdout))
        .to_string();
    let at = |w: &str| header.find(w).unwrap_or_else(|| panic!("{w} in {header}"));
    assert!(
        at("shard_id") < at("points") && at("points") < at("replicas"),
        "{}",
        text.stdout
    );
    assert!(
        headers.iter().any(|l| l
            .split_whitespace()
            .filter(|w| w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .collect::<Vec<_>>()
            == ["id", "uri", "rest_url", "this", "leader"]),
        "{}",
        text.stdout
    );

    // A healthy cluster: no finding, and qdrant-stats says so in one line.
    assert_eq!(env.findings(), []);
    let (code, lines) = env.procedure("qdrant-stats");
    assert_eq!(code, 0, "{lines:?}");
    assert_eq!(
        named(&lines, "qdrant cluster"),
        [format!(
            "ok qdrant cluster: 3 peers, leader {0}, consensus working, asked peer {0} (Leader)",
            ids[0]
        )]
    );
}

#[test]
fn a_dead_replica_and_a_shard_that_cannot_be_read_are_critical_everywhere() {
    let env = Distributed::new();
    let ids = env.ids();
    env.cluster
        .set_replica_state("youtube_content", 1, ids[1], "Dead");
    let dead = format!(
        "youtube_content shard 1: replica on peer {} is Dead: it takes no writes until Qdrant recovers it",
        ids[1]
    );
    let unreadable = format!(
        "youtube_content shard 1: no Active replica (Dead on peer {}): its points cannot be read",
        ids[1]
    );
    assert_eq!(
        env.findings(),
        [
            (
                "critical".to_string(),
                "youtube_content shard 1".to_string(),
                json!("youtube_content"),
                json!(1),
                Value::Null,
                unreadable.split_once(": ").unwrap().1.to_string()
            ),
            (
                "critical".to_string(),
                "youtube_content shard 1".to_string(),
                json!("youtube_content"),
                json!(1),
                json!(ids[1]),
                dead.split_once(": ").unwrap().1.to_string()
            ),
        ]
    );
    for procedure in ["qdrant-stats", "check-data"] {
        let (code, lines) = env.procedure(procedure);
        assert_eq!(code, 2, "{procedure}: {lines:?}");
        assert_eq!(
            named(&lines, "youtube_content shard 1"),
            [format!("critical {unreadable}"), format!("critical {dead}")],
            "{procedure}"
        );
    }
    // check-data cannot compare the pair: Qdrant refuses the scroll, naming the shard.
    let (_, lines) = env.procedure("check-data");
    let pair = named(&lines, "vector_mappings ↔ youtube_content");
    assert!(
        pair.len() == 1
            && pair[0].starts_with("critical")
            && pair[0].contains("shard 1")
            && pair[0].contains("does not have enough active replicas"),
        "{pair:?}"
    );
    let (code, lines) = env.procedure("test-health");
    assert_eq!(code, 2, "{lines:?}");
    assert_eq!(
        named(&lines, "youtube_content shard 1").len(),
        2,
        "{lines:?}"
    );
}

#[test]
fn partial_replicas_and_transfers_are_warnings_that_name_collection_shard_and_peer() {
    let env = Distributed::new();
    let ids = env.ids();
    // A second replica of shard 0 on peer 2, being filled from peer 0.
    env.cluster
        .start_transfer("youtube_content", 0, ids[0], ids[2]);
    // A collection with 2 replicas of each shard (on peers s and s+1), one of shard 2's
    // Partial: the shard stays readable through the other.
    let rt = seed::runtime();
    rt.block_on(
        seed::client(&env.cluster.peers()[0].grpc_url()).create_collection(
            qdrant_client::qdrant::CreateCollectionBuilder::new("replicated")
                .vectors_config(qdrant_client::qdrant::VectorParamsBuilder::new(
                    4,
                    qdrant_client::qdrant::Distance::Cosine,
                ))
                .shard_number(3)
                .replication_factor(2),
        ),
    )
    .expect("created");
    env.cluster
        .set_replica_state("replicated", 2, ids[2], "Partial");
    let found = env.findings();
    let texts: Vec<(&str, &str, &Value, &Value, &Value, &str)> = found
        .iter()
        .map(|f| (f.0.as_str(), f.1.as_str(), &f.2, &f.3, &f.4, f.5.as_str()))
        .collect();
    let recovering = format!("replica on peer {} is Recovery (in transfer)", ids[2]);
    let transfer = format!(
        "transfer from peer {} to peer {} in progress (snapshot)",
        ids[0], ids[2]
    );
    let partial = format!("replica on peer {} is Partial", ids[2]);
    assert_eq!(
        texts,
        [
            (
                "warning",
                "replicated shard 2",
                &json!("replicated"),
                &json!(2),
                &json!(ids[2]),
                partial.as_str()
            ),
            (
                "warning",
                "youtube_content shard 0",
                &json!("youtube_content"),
                &json!(0),
                &json!(ids[2]),
                recovering.as_str()
            ),
            (
                "warning",
                "youtube_content shard 0",
                &json!("youtube_content"),
                &json!(0),
                &json!(ids[2]),
                transfer.as_str()
            ),
        ]
    );
    // Warnings: qdrant-stats exits 1.
    let (code, lines) = env.procedure("qdrant-stats");
    assert_eq!(code, 1, "{lines:?}");
    assert_eq!(
        [
            named(&lines, "replicated shard"),
            named(&lines, "youtube_content shard")
        ]
        .concat(),
        [
            format!("warning replicated shard 2: {partial}"),
            format!("warning youtube_content shard 0: {recovering}"),
            format!("warning youtube_content shard 0: {transfer}"),
        ]
    );
}

#[test]
fn a_stopped_peer_is_named_and_its_shard_cannot_be_read() {
    let env = Distributed::new();
    let ids = env.ids();
    env.cluster.stop_peer(2);
    let found = env.findings();
    let peer = found
        .iter()
        .find(|f| f.1 == format!("qdrant peer {}", ids[2]))
        .unwrap_or_else(|| panic!("no finding of peer 2: {found:?}"));
    assert_eq!(peer.0, "warning");
    assert_eq!(peer.4, json!(ids[2]));
    assert!(
        peer.5.contains("fails to send it messages") && peer.5.contains("opsh could not read it"),
        "{}",
        peer.5
    );
    // Its shard's only replica is gone: check-data cannot compare the pair, and says why.
    let (code, lines) = env.procedure("check-data");
    assert_eq!(code, 2, "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("warning qdrant peer {}", ids[2]))),
        "{lines:?}"
    );
}

/// Rows and points as above, on a single-node double.
fn single() -> (TestDb, qdrant_double::Running) {
    let d = data();
    let q = QdrantDouble::start(Options::default()).expect("a double");
    seed::seed(&q.grpc_url(), &spec(&d));
    (database(&d), q)
}

/// A report without what names the servers (the connections' addresses: each its own database
/// and Qdrant).
fn comparable(mut report: Value) -> Value {
    for c in report["checks"].as_array_mut().unwrap() {
        if c["name"] == "qdrant" || c["name"] == "postgres" {
            c["detail"] = json!("(address)");
        }
    }
    report
}

#[test]
fn check_data_on_three_shards_reports_what_a_single_node_reports() {
    let env = Distributed::new();
    let (db, q) = single();
    let one = || {
        Opsh::new()
            .db(&db)
            .env("QDRANT_URL", &q.grpc_url())
            .env("OPSH_QDRANT_REST_URL", &q.rest_url())
    };
    // The scroll through any peer: every id once, in the single node's order (numbers first,
    // then UUIDs), pages crossing shards.
    let ids = one()
        .args([
            "--json",
            "-e",
            r#"qdrant::ids("youtube_content", #{page_size: 7})"#,
        ])
        .run()
        .json();
    assert_eq!(ids.as_array().unwrap().len(), 245);
    assert_eq!(
        env.eval(r#"qdrant::ids("youtube_content", #{page_size: 7})"#),
        ids
    );

    let single_run = one().args(["--json", "check-data"]).run();
    let cluster_run = env.opsh().args(["--json", "check-data"]).run();
    assert_eq!(cluster_run.code, single_run.code);
    let (single_report, cluster_report) = (single_run.report(), cluster_run.report());
    let chunks = single_report["data"]["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "chunks")
        .unwrap();
    // What was seeded: 240 rows and examples.sql's 2 (whose points are not seeded), 231 of their
    // points and 14 orphans.
    assert_eq!(
        (
            &chunks["rows"],
            &chunks["points"],
            &chunks["missing"],
            &chunks["orphans"],
            &chunks["invalid"]
        ),
        (&json!(242), &json!(245), &json!(11), &json!(14), &json!(0)),
        "{chunks}"
    );
    assert_eq!(comparable(cluster_report), comparable(single_report));

    // The same merge in small pages (every page crossing shards) and in 3 scroll partitions.
    let counts = r#"let c = integrity::check(#{page_size: 7}); c.pairs.map(|p| [p.name, p.rows, p.points, p.matched, p.missing, p.orphans, p.sample_orphans])"#;
    let want = one().args(["--json", "-e", counts]).run().json();
    assert_eq!(env.eval(counts), want);
    let partitioned = env
        .opsh()
        .env("OPSH_QDRANT_SCROLL_PARTITIONS", "3")
        .args(["--json", "-e", counts])
        .run();
    partitioned.code(0);
    assert_eq!(partitioned.json(), want);

    // check-data-fix through the cluster deletes exactly the orphans, on every shard.
    let fix = env
        .opsh()
        .args(["--json", "--yes", "check-data-fix", "grace=0s"])
        .run();
    let report = fix.report();
    let after = env.eval(r#"qdrant::ids("youtube_content")"#);
    let fixed = one()
        .args(["--json", "--yes", "check-data-fix", "grace=0s"])
        .run();
    assert_eq!(fix.code, fixed.code, "{report}");
    assert_eq!(
        after,
        one()
            .args(["--json", "-e", r#"qdrant::ids("youtube_content")"#])
            .run()
            .json()
    );
    assert_eq!(after.as_array().unwrap().len(), 245 - 14);
}
