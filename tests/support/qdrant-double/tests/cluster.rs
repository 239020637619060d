//! Distributed mode: every answer pinned to what a real Qdrant 1.18.3 cluster answered (3 peers
//! on one machine, checked by hand; see the comments in src/cluster.rs for each source).

mod common;

use std::collections::BTreeSet;

use common::{http, id_text, multipart, order_key, status_of};
use qdrant_client::Qdrant;
use qdrant_client::qdrant::{
    CollectionClusterInfoRequest, CountPointsBuilder, CreateCollectionBuilder, DeletePointsBuilder,
    Distance, GetPointsBuilder, PointId, PointStruct, PointsIdsList, ReplicaState,
    ScrollPointsBuilder, UpsertPointsBuilder, VectorParamsBuilder,
};
use qdrant_double::{Cluster, Options, PeerHandle, QdrantDouble};
use serde_json::{Value, json};

fn client(peer: &PeerHandle) -> Qdrant {
    Qdrant::from_url(&peer.grpc_url())
        .skip_compatibility_check()
        .build()
        .expect("a client")
}

fn get(peer: &PeerHandle, path: &str) -> common::HttpResponse {
    http(peer.rest_addr(), "GET", path, &[], b"")
}

fn send_json(peer: &PeerHandle, method: &str, path: &str, body: &Value) -> common::HttpResponse {
    http(
        peer.rest_addr(),
        method,
        path,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
}

/// Creates `name` over REST on peer 0 with this sharding.
fn create(cluster: &Cluster, name: &str, shards: u32, replication: u32) {
    let r = send_json(
        &cluster.peers()[0],
        "PUT",
        &format!("/collections/{name}"),
        &json!({"vectors": {"size": 4, "distance": "Cosine"},
                "shard_number": shards, "replication_factor": replication}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"], json!(true));
}

/// Numbers 1..=n and `uuids` UUIDs, as ids.
fn mixed_ids(n: u64, uuids: u128) -> Vec<PointId> {
    let mut ids: Vec<PointId> = (1..=n).map(PointId::from).collect();
    ids.extend((0..uuids).map(|i| {
        PointId::from(uuid::Uuid::from_u128(i * 0x9e37_79b9_7f4a_7c15 + (1 << 100)).to_string())
    }));
    ids
}

async fn upsert(client: &Qdrant, name: &str, ids: &[PointId]) {
    let points: Vec<PointStruct> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            PointStruct::new(
                id.clone(),
                vec![1.0, 0.0, 0.0, 0.0],
                [("n", (i as i64).into())],
            )
        })
        .collect();
    client
        .upsert_points(UpsertPointsBuilder::new(name, points).wait(true))
        .await
        .expect("upserted");
}

async fn count(client: &Qdrant, name: &str) -> Result<u64, tonic::Status> {
    client
        .count(CountPointsBuilder::new(name).exact(true))
        .await
        .map(|r| r.result.expect("a count").count)
        .map_err(status_of)
}

async fn scroll_all(client: &Qdrant, name: &str) -> Vec<PointId> {
    let mut out = Vec::new();
    let mut offset: Option<PointId> = None;
    loop {
        let mut request = ScrollPointsBuilder::new(name).limit(7);
        if let Some(o) = offset.take() {
            request = request.offset(o);
        }
        let page = client.scroll(request).await.expect("scrolled");
        out.extend(page.result.into_iter().map(|p| p.id.expect("an id")));
        match page.next_page_offset {
            Some(next) => offset = Some(next),
            None => return out,
        }
    }
}

/// The shards whose replicas are on `peer` by the placement rule.
fn placed(shards: u32, replication: u32, peers: usize, index: usize) -> BTreeSet<u32> {
    (0..shards)
        .filter(|s| (0..replication).any(|r| ((s + r) as usize) % peers == index))
        .collect()
}

#[test]
fn get_cluster_answers_as_a_qdrant_peer_does() {
    let cluster = QdrantDouble::start_cluster(Options::default(), 3).expect("a cluster");
    let peers = cluster.peers();
    assert_eq!(peers.len(), 3);
    let ids: BTreeSet<u64> = peers.iter().map(|p| p.peer_id).collect();
    assert_eq!(ids.len(), 3, "peer ids are distinct");
    for (i, peer) in peers.iter().enumerate() {
        assert!(peer.peer_id < (1 << 53), "JSON keeps the id exactly");
        assert!(peer.p2p_uri().starts_with("http://127.0.0.1:"));
        assert!(peer.p2p_uri().ends_with('/'));
        let r = get(peer, "/cluster");
        assert_eq!(r.status, 200);
        let body = r.json();
        assert_eq!(body["status"], "ok");
        let result = &body["result"];
        assert_eq!(result["status"], "enabled");
        assert_eq!(result["peer_id"], json!(peer.peer_id));
        let listed: serde_json::Map<String, Value> =
            result["peers"].as_object().expect("peers").clone();
        assert_eq!(listed.len(), 3);
        for other in peers {
            assert_eq!(
                listed[&other.peer_id.to_string()],
                json!({"uri": other.p2p_uri()})
            );
        }
        let raft = &result["raft_info"];
        assert_eq!(raft["leader"], json!(peers[0].peer_id));
        assert_eq!(raft["role"], if i == 0 { "Leader" } else { "Follower" });
        assert_eq!(raft["is_voter"], json!(true));
        assert_eq!(raft["pending_operations"], json!(0));
        assert!(raft["term"].as_u64().is_some() && raft["commit"].as_u64().is_some());
        assert_eq!(
            result["consensus_thread_status"]["consensus_thread_status"],
            "working"
        );
        let last = result["consensus_thread_status"]["last_update"]
            .as_str()
            .expect("a time");
        chrono::DateTime::parse_from_rfc3339(last).expect("RFC 3339");
        assert_eq!(result["message_send_failures"], json!({}));
    }
    cluster.stop();
}

#[tokio::test]
async fn a_single_node_has_distributed_mode_disabled_and_every_shard_local() {
    let double = QdrantDouble::start(Options::default()).expect("a double");
    let r = http(double.rest_addr(), "GET", "/cluster", &[], b"");
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["result"], json!({"status": "disabled"}));
    assert_eq!(body["status"], "ok");

    let client = common::client_with_key(&double, None);
    common::create_small(&client, "c").await;
    common::upsert_ids(&client, "c", &mixed_ids(5, 0)).await;
    let r = http(
        double.rest_addr(),
        "GET",
        "/collections/c/cluster",
        &[],
        b"",
    );
    let result = &r.json()["result"];
    let peer_id = result["peer_id"].as_u64().expect("a peer id");
    assert_eq!(
        *result,
        json!({"peer_id": peer_id, "shard_count": 1,
               "local_shards": [{"shard_id": 0, "points_count": 5, "state": "Active"}],
               "remote_shards": [], "shard_transfers": []})
    );
    let info = client
        .collection_cluster_info(CollectionClusterInfoRequest {
            collection_name: "c".into(),
        })
        .await
        .expect("cluster info");
    assert_eq!(info.peer_id, peer_id);
    assert_eq!(info.shard_count, 1);
    assert_eq!(info.local_shards.len(), 1);
    assert_eq!(info.local_shards[0].points_count, 5);
    assert_eq!(info.local_shards[0].state, ReplicaState::Active as i32);
    assert!(info.remote_shards.is_empty() && info.shard_transfers.is_empty());

    // A collection with two shards on one node: both local (1.18.3).
    let r = http(
        double.rest_addr(),
        "PUT",
        "/collections/two",
        &[("Content-Type", "application/json")],
        br#"{"vectors":{"size":2,"distance":"Dot"},"shard_number":2}"#,
    );
    assert_eq!(r.status, 200);
    let r = http(
        double.rest_addr(),
        "GET",
        "/collections/two/cluster",
        &[],
        b"",
    );
    let local = r.json()["result"]["local_shards"].clone();
    assert_eq!(
        local,
        json!([{"shard_id": 0, "points_count": 0, "state": "Active"},
               {"shard_id": 1, "points_count": 0, "state": "Active"}])
    );
    let r = http(
        double.rest_addr(),
        "GET",
        "/collections/nope/cluster",
        &[],
        b"",
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json()["status"]["error"],
        "Not found: Collection `nope` doesn't exist!"
    );
    double.stop();
}

#[tokio::test]
async fn collections_default_to_one_shard_per_peer_and_no_replication() {
    let cluster = QdrantDouble::start_cluster(Options::default(), 3).expect("a cluster");
    let client = client(&cluster.peers()[1]);
    client
        .create_collection(
            CreateCollectionBuilder::new("d")
                .vectors_config(VectorParamsBuilder::new(4, Distance::Cosine)),
        )
        .await
        .expect("created");
    let info = client.collection_info("d").await.expect("info");
    let params = info
        .result
        .and_then(|r| r.config)
        .and_then(|c| c.params)
        .expect("params");
    assert_eq!(params.shard_number, 3);
    assert_eq!(params.replication_factor, Some(1));

    // Given over gRPC, as Qdrant takes them.
    client
        .create_collection(
            CreateCollectionBuilder::new("g")
                .vectors_config(VectorParamsBuilder::new(4, Distance::Cosine))
                .shard_number(2)
                .replication_factor(2),
        )
        .await
        .expect("created");
    let info = client
        .collection_cluster_info(CollectionClusterInfoRequest {
            collection_name: "g".into(),
        })
        .await
        .expect("cluster info");
    assert_eq!(info.shard_count, 2);
    assert_eq!(info.peer_id, cluster.peers()[1].peer_id);
    cluster.stop();
}

#[tokio::test]
async fn replicas_are_placed_by_the_rule_and_each_peer_sees_local_and_remote_ones() {
    let cluster = QdrantDouble::start_cluster(Options::default(), 3).expect("a cluster");
    let peers = cluster.peers();
    create(&cluster, "r", 3, 2);
    let ids = mixed_ids(40, 20);
    upsert(&client(&peers[2]), "r", &ids).await;

    let mut local_points = 0;
    for (i, peer) in peers.iter().enumerate() {
        let r = get(peer, "/collections/r/cluster");
        assert_eq!(r.status, 200);
        let result = r.json()["result"].clone();
        assert_eq!(result["peer_id"], json!(peer.peer_id));
        assert_eq!(result["shard_count"], json!(3));
        assert_eq!(result["shard_transfers"], json!([]));
        let local: BTreeSet<u32> = result["local_shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                assert_eq!(s["state"], "Active");
                local_points += s["points_count"].as_u64().unwrap();
                s["shard_id"].as_u64().unwrap() as u32
            })
            .collect();
        assert_eq!(local, placed(3, 2, 3, i));
        // Remote shards: every other replica, by shard then peer id, each with its peer.
        let remote = result["remote_shards"].as_array().unwrap();
        assert_eq!(remote.len(), 6 - local.len());
        let keys: Vec<(u64, u64)> = remote
            .iter()
            .map(|s| {
                assert_eq!(s["state"], "Active");
                let peer_id = s["peer_id"].as_u64().unwrap();
                assert_ne!(peer_id, peer.peer_id);
                let holder = peers.iter().position(|p| p.peer_id == peer_id).unwrap();
                let shard = s["shard_id"].as_u64().unwrap();
                assert!(placed(3, 2, 3, holder).contains(&(shard as u32)));
                (shard, peer_id)
            })
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);

        // The gRPC answer is the same.
        let info = client(peer)
            .collection_cluster_info(CollectionClusterInfoRequest {
                collection_name: "r".into(),
            })
            .await
            .expect("cluster info");
        assert_eq!(info.peer_id, peer.peer_id);
        assert_eq!(
            info.local_shards
                .iter()
                .map(|s| s.shard_id)
                .collect::<BTreeSet<_>>(),
            local
        );
        assert_eq!(info.remote_shards.len(), remote.len());
    }
    // Each point is counted once per replica: twice.
    assert_eq!(local_points, 2 * ids.len() as u64);
    cluster.stop();
}

#[tokio::test]
async fn scroll_through_any_peer_returns_the_whole_collection_in_global_id_order() {
    let cluster = QdrantDouble::start_cluster(Options::default(), 3).expect("a cluster");
    create(&cluster, "s", 3, 1);
    let ids = mixed_ids(30, 15);
    // Written through one peer, in shuffled order.
    let mut shuffled = ids.clone();
    shuffled.reverse();
    upsert(&client(&cluster.peers()[1]), "s", &shuffled).await;

    let mut expected = ids.clone();
    expected.sort_by_key(order_key);
    // The points do spread over every shard.
    let r = get(&cluster.peers()[0], "/collections/s/cluster");
    let result = r.json()["result"].clone();
    let on_peer0: u64 = result["local_shards"][0]["points_count"].as_u64().unwrap();
    assert!(on_peer0 > 0 && on_peer0 < ids.len() as u64, "{result}");
    for peer in cluster.peers() {
        let client = client(peer);
        let seen = scroll_all(&client, "s").await;
        assert_eq!(
            seen.iter().map(id_text).collect::<Vec<_>>(),
            expected.iter().map(id_text).collect::<Vec<_>>(),
            "numbers first, then UUIDs, across shards"
        );
        assert_eq!(count(&client, "s").await.unwrap(), ids.len() as u64);
        let got = client
            .get_points(GetPointsBuilder::new(
                "s",
                vec![ids[0].clone(), ids[40].clone()],
            ))
            .await
            .expect("got");
        assert_eq!(got.result.len(), 2);
    }
    // A delete through another peer is seen everywhere.
    client(&cluster.peers()[2])
        .delete_points(
            DeletePointsBuilder::new("s")
                .points(PointsIdsList {
                    ids: ids[..10].to_vec(),
                })
                .wait(true),
        )
        .await
        .expect("deleted");
    for peer in cluster.peers() {
        assert_eq!(count(&client(peer), "s").await.unwrap(), 35);
    }
    cluster.stop();
}

#[tokio::test]
async fn a_shard_without_a_readable_replica_fails_reads_as_qdrant() {
    let cluster = QdrantDouble::start_cluster(Options::default(), 3).expect("a cluster");
    let peers = cluster.peers();
    create(&cluster, "x", 3, 2);
    upsert(&client(&peers[0]), "x", &mixed_ids(20, 5)).await;

    // Shard 1 is on peers 1 and 2. Partial and Dead do not serve reads; ActiveRead does.
    cluster.set_replica_state("x", 1, peers[1].peer_id, "Dead");
    assert_eq!(count(&client(&peers[0]), "x").await.unwrap(), 25);
    cluster.set_replica_state("x", 1, peers[2].peer_id, "Partial");
    let r = get(&peers[0], "/collections/x/cluster");
    let remote = r.json()["result"]["remote_shards"].clone();
    assert!(
        remote
            .as_array()
            .unwrap()
            .contains(&json!({"shard_id": 1, "peer_id": peers[1].peer_id, "state": "Dead"}))
    );
    assert!(
        remote
            .as_array()
            .unwrap()
            .contains(&json!({"shard_id": 1, "peer_id": peers[2].peer_id, "state": "Partial"}))
    );
    for peer in peers {
        let status = count(&client(peer), "x").await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal);
        assert_eq!(
            status.message(),
            format!(
                "Service internal error: The replica set for shard 1 on peer {} does not have enough active replicas",
                peer.peer_id
            )
        );
        let status = client(peer)
            .scroll(ScrollPointsBuilder::new("x"))
            .await
            .map_err(status_of)
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal);
        let status = client(peer)
            .get_points(GetPointsBuilder::new("x", vec![PointId::from(1)]))
            .await
            .map_err(status_of)
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal);
    }
    cluster.set_replica_state("x", 1, peers[2].peer_id, "ActiveRead");
    assert_eq!(count(&client(&peers[1]), "x").await.unwrap(), 25);
    for state in ["Recovery", "Listener", "Initializing", "ManualRecovery"] {
        cluster.set_replica_state("x", 1, peers[2].peer_id, state);
        assert!(count(&client(&peers[1]), "x").await.is_err(), "{state}");
    }
    cluster.set_replica_state("x", 1, peers[2].peer_id, "ReshardingScaleDown");
    assert_eq!(count(&client(&peers[1]), "x").await.unwrap(), 25);
    cluster.stop();
}

#[tokio::test]
async fn a_stopped_peer_fails_the_reads_and_writes_it_alone_serves() {
    let cluster = QdrantDouble::start_cluster(Options::default(), 3).expect("a cluster");
    let peers = cluster.peers().to_vec();
    create(&cluster, "one", 3, 1);
    create(&cluster, "two", 3, 2);
    let ids = mixed_ids(30, 0);
    upsert(&client(&peers[0]), "one", &ids).await;
    upsert(&client(&peers[0]), "two", &ids).await;

    cluster.stop_peer(2);
    // Its ports are closed, as a killed process's.
    assert!(std::net::TcpStream::connect(peers[2].rest_addr()).is_err());
    assert!(std::net::TcpStream::connect(peers[2].grpc_addr()).is_err());

    // Shard 2 of "one" lives only on peer 2: Qdrant's read error through any live peer.
    for peer in &peers[..2] {
        let status = count(&client(peer), "one").await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal);
        assert_eq!(
            status.message(),
            format!(
                "Service internal error: 1 of 1 read operations failed:\n  Service internal error: Tonic status error: code: 'The service is currently unavailable', message: \"Failed to connect to {}, error: transport error\"",
                peers[2].p2p_uri()
            )
        );
    }
    // "two" has a second copy of every shard: reads go on.
    assert_eq!(count(&client(&peers[0]), "two").await.unwrap(), 30);

    // The leader reports its failed sends to the stopped peer; followers send it nothing.
    let r = get(&peers[0], "/cluster");
    let failures = r.json()["result"]["message_send_failures"].clone();
    let entry = &failures[peers[2].p2p_uri()];
    assert!(entry["count"].as_u64().unwrap() >= 1, "{failures}");
    let error = entry["latest_error"].as_str().unwrap();
    assert!(
        error.starts_with(
            "Error in closure supplied to transport channel pool: code: 'The service is currently unavailable', message: \"tcp connect error\""
        ),
        "{error}"
    );
    assert!(error.contains("Connection refused"));
    let at = entry["latest_error_timestamp"].as_str().unwrap();
    chrono::DateTime::parse_from_rfc3339(at).expect("RFC 3339");
    assert_eq!(failures.as_object().unwrap().len(), 1);
    let r = get(&peers[1], "/cluster");
    assert_eq!(r.json()["result"]["message_send_failures"], json!({}));
    // The stopped peer stays listed.
    assert_eq!(r.json()["result"]["peers"].as_object().unwrap().len(), 3);

    // A write to a shard held only by the stopped peer fails; a one-shard write answers the
    // shard's error alone (1.18.3), a wider one wraps it.
    let points = |ids: &[PointId]| -> Vec<PointStruct> {
        ids.iter()
            .map(|id| PointStruct::new(id.clone(), vec![0.0, 1.0, 0.0, 0.0], [("k", 1.into())]))
            .collect()
    };
    let status = client(&peers[0])
        .upsert_points(UpsertPointsBuilder::new("one", points(&ids)).wait(true))
        .await
        .map_err(status_of)
        .unwrap_err();
    let unreachable = format!(
        "Service internal error: Tonic status error: code: 'The service is currently unavailable', message: \"Failed to connect to {}, error: transport error\"",
        peers[2].p2p_uri()
    );
    assert_eq!(status.code(), tonic::Code::Internal);
    assert_eq!(
        status.message(),
        format!(
            "Service internal error: 1 out of 3 shards failed to apply operation. First error captured: {unreachable}"
        )
    );
    let in_shard_2: Vec<PointId> = ids
        .iter()
        .filter(|id| qdrant_double::shard_of(id, 3) == 2)
        .take(1)
        .cloned()
        .collect();
    let status = client(&peers[1])
        .upsert_points(UpsertPointsBuilder::new("one", points(&in_shard_2)).wait(true))
        .await
        .map_err(status_of)
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal);
    assert_eq!(status.message(), unreachable);
    // Writes to the other shards went through.
    let in_shard_0: Vec<PointId> = ids
        .iter()
        .filter(|id| qdrant_double::shard_of(id, 3) == 0)
        .cloned()
        .collect();
    let got = client(&peers[0])
        .get_points(GetPointsBuilder::new("one", in_shard_0.clone()).with_payload(true))
        .await;
    // (A read of "one" still fails: shard 2 is unreachable.)
    assert!(got.is_err());
    // The same write to "two" succeeds and marks the stopped peer's replicas Dead.
    upsert(&client(&peers[0]), "two", &ids).await;
    let r = get(&peers[0], "/collections/two/cluster");
    let remote = r.json()["result"]["remote_shards"].clone();
    let dead: BTreeSet<u64> = remote
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["peer_id"] == json!(peers[2].peer_id))
        .map(|s| {
            assert_eq!(s["state"], "Dead", "{remote}");
            s["shard_id"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(dead, BTreeSet::from([1, 2]));
    assert_eq!(count(&client(&peers[1]), "two").await.unwrap(), 30);
    cluster.stop();
}

#[tokio::test]
async fn a_started_transfer_is_listed_as_qdrant_lists_one_in_progress() {
    let cluster = QdrantDouble::start_cluster(Options::default(), 3).expect("a cluster");
    let peers = cluster.peers();
    create(&cluster, "t", 3, 1);
    // Shard 0 is on peer 0; replicate it to peer 1.
    cluster.start_transfer("t", 0, peers[0].peer_id, peers[1].peer_id);
    let r = get(&peers[0], "/collections/t/cluster");
    let result = r.json()["result"].clone();
    assert_eq!(
        result["shard_transfers"],
        json!([{"shard_id": 0, "from": peers[0].peer_id, "to": peers[1].peer_id,
                "sync": true, "method": "snapshot", "comment": ""}])
    );
    assert!(
        result["remote_shards"]
            .as_array()
            .unwrap()
            .contains(&json!({"shard_id": 0, "peer_id": peers[1].peer_id, "state": "Recovery"}))
    );
    let info = client(&peers[2])
        .collection_cluster_info(CollectionClusterInfoRequest {
            collection_name: "t".into(),
        })
        .await
        .expect("cluster info");
    assert_eq!(info.shard_transfers.len(), 1);
    let t = &info.shard_transfers[0];
    assert_eq!(
        (t.shard_id, t.from, t.to, t.sync),
        (0, peers[0].peer_id, peers[1].peer_id, true)
    );
    cluster.stop();
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The ids of a collection's points through a peer, as text, in order.
async fn ids_of(peer: &PeerHandle, name: &str) -> Vec<String> {
    scroll_all(&client(peer), name)
        .await
        .iter()
        .map(id_text)
        .collect()
}

#[tokio::test]
async fn shard_snapshots_are_made_listed_downloaded_and_deleted_on_the_peers_holding_the_shard() {
    let cluster = QdrantDouble::start_cluster(Options::default(), 3).expect("a cluster");
    let peers = cluster.peers();
    create(&cluster, "sh", 3, 1);
    let ids = mixed_ids(30, 10);
    upsert(&client(&peers[0]), "sh", &ids).await;
    // Shard 1 lives on peer 1 only.
    let r = http(
        peers[1].rest_addr(),
        "POST",
        "/collections/sh/shards/1/snapshots?wait=true",
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let made = r.json()["result"].clone();
    let name = made["name"].as_str().unwrap().to_string();
    let stamp = name
        .strip_prefix("sh-shard-1-")
        .and_then(|n| n.strip_suffix(".snapshot"))
        .expect("Qdrant's shard snapshot name");
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d-%H-%M-%S").expect("a UTC stamp");
    let created = made["creation_time"].as_str().unwrap();
    chrono::NaiveDateTime::parse_from_str(created, "%Y-%m-%dT%H:%M:%S").expect("naive time");
    assert!(made["size"].as_u64().unwrap() > 0);
    // Kept where Qdrant keeps it.
    assert!(
        peers[1]
            .snapshots_dir()
            .join("sh/shards/1")
            .join(&name)
            .is_file()
    );

    let r = get(&peers[1], "/collections/sh/shards/1/snapshots");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["result"], json!([made.clone()]));

    let download = get(
        &peers[1],
        &format!("/collections/sh/shards/1/snapshots/{name}"),
    );
    assert_eq!(download.status, 200);
    assert_eq!(
        download.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(made["checksum"], json!(sha256_hex(&download.body)));

    // Peers without the shard refuse, with 1.18.3's texts and codes.
    let r = http(
        peers[0].rest_addr(),
        "POST",
        "/collections/sh/shards/1/snapshots?wait=true",
        &[],
        b"",
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["status"]["error"],
        "Wrong input: Shard 1 is not a local or queue proxy shard"
    );
    let r = get(&peers[0], "/collections/sh/shards/1/snapshots");
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["status"]["error"],
        "Wrong input: Shard 1 is not a local shard"
    );
    let r = get(&peers[0], "/collections/sh/shards/7/snapshots");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["status"]["error"], "Not found: shard 7 not found");
    let r = http(
        peers[0].rest_addr(),
        "POST",
        "/collections/nope/shards/0/snapshots",
        &[],
        b"",
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json()["status"]["error"],
        "Not found: Collection `nope` doesn't exist!"
    );
    let r = get(
        &peers[1],
        "/collections/sh/shards/1/snapshots/nope.snapshot",
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        r.text(),
        "File not found: No such file or directory (os error 2)"
    );
    let r = http(
        peers[1].rest_addr(),
        "DELETE",
        "/collections/sh/shards/1/snapshots/nope.snapshot",
        &[],
        b"",
    );
    assert_eq!(r.status, 404);
    let path = peers[1].snapshots_dir().join("sh/shards/1/nope.snapshot");
    assert_eq!(
        r.json()["status"]["error"],
        json!(format!(
            "Not found: Snapshot {:?} not found",
            path.display().to_string()
        ))
    );

    // Download refusals are plain text (1.18.3); delete's are JSON.
    let r = get(
        &peers[0],
        &format!("/collections/sh/shards/1/snapshots/{name}"),
    );
    assert_eq!(
        (r.status, r.text().as_str()),
        (
            400,
            "Wrong input: Shard 1 is not a local or queue proxy shard"
        )
    );
    let r = get(&peers[0], "/collections/sh/shards/9/snapshots/x.snapshot");
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, "Not found: shard 9 not found")
    );
    let r = get(&peers[0], "/collections/nope/shards/0/snapshots/x.snapshot");
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, "Not found: Collection `nope` doesn't exist!")
    );
    let r = http(
        peers[0].rest_addr(),
        "DELETE",
        &format!("/collections/sh/shards/1/snapshots/{name}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["status"]["error"],
        "Wrong input: Shard 1 is not a local or queue proxy shard"
    );
    // Upload and recover to a shard that does not exist: 404 before anything else.
    let (content_type, body) = multipart("snapshot", "x.snapshot", b"whatever");
    let r = http(
        peers[0].rest_addr(),
        "POST",
        "/collections/sh/shards/9/snapshots/upload",
        &[("Content-Type", &content_type)],
        &body,
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["status"]["error"], "Not found: shard 9 not found");
    let r = send_json(
        &peers[0],
        "PUT",
        "/collections/sh/shards/9/snapshots/recover",
        &json!({"location": "http://127.0.0.1:1/x.snapshot"}),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["status"]["error"], "Not found: shard 9 not found");

    let r = http(
        peers[1].rest_addr(),
        "DELETE",
        &format!("/collections/sh/shards/1/snapshots/{name}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["result"], json!(true));
    let r = get(&peers[1], "/collections/sh/shards/1/snapshots");
    assert_eq!(r.json()["result"], json!([]));
    cluster.stop();
}

#[tokio::test]
async fn a_shard_snapshot_holds_that_shard_and_recovering_it_replaces_that_shard_only() {
    let cluster = QdrantDouble::start_cluster(Options::default(), 3).expect("a cluster");
    let peers = cluster.peers();
    create(&cluster, "rs", 3, 1);
    let ids = mixed_ids(30, 10);
    upsert(&client(&peers[0]), "rs", &ids).await;
    let in_shard = |s: u32| -> Vec<PointId> {
        ids.iter()
            .filter(|id| qdrant_double::shard_of(id, 3) == s)
            .cloned()
            .collect()
    };
    let shard0 = in_shard(0);
    assert!(!shard0.is_empty() && shard0.len() < ids.len());

    let r = http(
        peers[0].rest_addr(),
        "POST",
        "/collections/rs/shards/0/snapshots?wait=true",
        &[],
        b"",
    );
    let made = r.json()["result"].clone();
    let name = made["name"].as_str().unwrap().to_string();
    let bytes = get(
        &peers[0],
        &format!("/collections/rs/shards/0/snapshots/{name}"),
    )
    .body;
    let before = ids_of(&peers[2], "rs").await;

    // Lose shard 0's points and one point of shard 1, then upload the shard-0 snapshot.
    client(&peers[0])
        .delete_points(
            DeletePointsBuilder::new("rs")
                .points(PointsIdsList {
                    ids: [shard0.clone(), in_shard(1)[..1].to_vec()].concat(),
                })
                .wait(true),
        )
        .await
        .expect("deleted");
    // A checksum that differs: 1.18.3's text, sums swapped as Qdrant swaps them.
    let (content_type, body) = multipart("snapshot", &name, &bytes);
    let wrong = "0".repeat(64);
    let r = http(
        peers[0].rest_addr(),
        "POST",
        &format!(
            "/collections/rs/shards/0/snapshots/upload?priority=snapshot&checksum={wrong}&wait=true"
        ),
        &[("Content-Type", &content_type)],
        &body,
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["status"]["error"],
        json!(format!(
            "Checksum mismatch: expected {}, actual {wrong}",
            sha256_hex(&bytes)
        ))
    );
    let r = http(
        peers[0].rest_addr(),
        "POST",
        &format!(
            "/collections/rs/shards/0/snapshots/upload?priority=snapshot&checksum={}&wait=true",
            sha256_hex(&bytes)
        ),
        &[("Content-Type", &content_type)],
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"], Value::Null);
    assert_eq!(r.json()["status"], "ok");
    let after = ids_of(&peers[1], "rs").await;
    // Shard 0 is back; shard 1's lost point stays lost.
    let lost = id_text(&in_shard(1)[0]);
    let expected: Vec<String> = before.iter().filter(|id| **id != lost).cloned().collect();
    assert_eq!(after, expected);

    // wait=false answers 202 "accepted" without a result.
    let r = http(
        peers[0].rest_addr(),
        "POST",
        "/collections/rs/shards/0/snapshots/upload?wait=false",
        &[("Content-Type", &content_type)],
        &body,
    );
    assert_eq!(r.status, 202);
    let answer = r.json();
    assert_eq!(answer["status"], "accepted");
    assert!(answer.get("result").is_none());

    // Uploaded to a peer without the shard, Qdrant gives that peer a replica of it.
    let r = http(
        peers[2].rest_addr(),
        "POST",
        "/collections/rs/shards/0/snapshots/upload?priority=snapshot&wait=true",
        &[("Content-Type", &content_type)],
        &body,
    );
    assert_eq!(r.status, 200);
    let r = get(&peers[2], "/collections/rs/cluster");
    let local = r.json()["result"]["local_shards"].clone();
    assert!(
        local
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["shard_id"] == json!(0) && s["state"] == "Active"),
        "{local}"
    );
    cluster.stop();
}

#[tokio::test]
async fn a_shard_is_recovered_from_a_location_as_qdrant_recovers_it() {
    let cluster = QdrantDouble::start_cluster(Options::default(), 3).expect("a cluster");
    let peers = cluster.peers();
    create(&cluster, "loc", 3, 2);
    let ids = mixed_ids(30, 10);
    upsert(&client(&peers[0]), "loc", &ids).await;
    let shard2: Vec<PointId> = ids
        .iter()
        .filter(|id| qdrant_double::shard_of(id, 3) == 2)
        .cloned()
        .collect();
    // Shard 2 is on peers 2 and 0.
    let r = http(
        peers[2].rest_addr(),
        "POST",
        "/collections/loc/shards/2/snapshots?wait=true",
        &[],
        b"",
    );
    let made = r.json()["result"].clone();
    let name = made["name"].as_str().unwrap();
    let checksum = made["checksum"].as_str().unwrap().to_string();
    let url = format!(
        "{}/collections/loc/shards/2/snapshots/{name}",
        peers[2].rest_url()
    );
    let before = ids_of(&peers[0], "loc").await;
    client(&peers[1])
        .delete_points(
            DeletePointsBuilder::new("loc")
                .points(PointsIdsList { ids: shard2 })
                .wait(true),
        )
        .await
        .expect("deleted");
    assert_ne!(ids_of(&peers[0], "loc").await, before);

    let path = "/collections/loc/shards/2/snapshots/recover";
    let r = send_json(
        &peers[0],
        "PUT",
        path,
        &json!({"location": url, "priority": "snapshot", "checksum": "abc"}),
    );
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["status"]["error"],
        "Validation error in JSON body: [checksum: Validation error: invalid_sha256_hash [{\"length\": Number(3), \"expected_length\": Number(64), \"value\": String(\"abc\")}]]"
    );
    let wrong = "0".repeat(64);
    let r = send_json(
        &peers[0],
        "PUT",
        path,
        &json!({"location": url, "priority": "snapshot", "checksum": wrong}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["status"]["error"],
        json!(format!(
            "Wrong input: Snapshot checksum mismatch: expected {wrong}, got {checksum}"
        ))
    );
    let file = format!(
        "file://{}",
        peers[2]
            .snapshots_dir()
            .join("loc/shards/2")
            .join(name)
            .display()
    );
    let r = send_json(&peers[0], "PUT", path, &json!({"location": file}));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["status"]["error"],
        json!(format!(
            "Wrong input: Invalid snapshot URL {file}: URLs with file scheme are not supported"
        ))
    );
    let missing = format!(
        "{}/collections/loc/shards/2/snapshots/nope.snapshot",
        peers[2].rest_url()
    );
    let r = send_json(&peers[0], "PUT", path, &json!({"location": missing}));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["status"]["error"],
        json!(format!(
            "Wrong input: Failed to download tar from {missing}: status - 404 Not Found"
        ))
    );
    // Nothing came back yet.
    assert_ne!(ids_of(&peers[0], "loc").await, before);

    let r = send_json(
        &peers[0],
        "PUT",
        path,
        &json!({"location": url, "priority": "snapshot", "checksum": checksum}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"], json!(true));
    assert_eq!(ids_of(&peers[1], "loc").await, before);
    cluster.stop();
}

#[tokio::test]
async fn a_peers_collection_snapshot_holds_its_local_shards_only() {
    let cluster = QdrantDouble::start_cluster(Options::default(), 3).expect("a cluster");
    let peers = cluster.peers();
    create(&cluster, "youtube_content", 3, 1);
    let ids = mixed_ids(30, 10);
    upsert(&client(&peers[0]), "youtube_content", &ids).await;
    let r = http(
        peers[1].rest_addr(),
        "POST",
        "/collections/youtube_content/snapshots?wait=true",
        &[],
        b"",
    );
    assert_eq!(r.status, 200);
    let made = r.json()["result"].clone();
    let name = made["name"].as_str().unwrap().to_string();
    // Named with the peer's id, as 1.18.3 names it.
    let prefix = format!("youtube_content-{}-", peers[1].peer_id);
    assert!(name.starts_with(&prefix), "{name}");
    let bytes = get(
        &peers[1],
        &format!("/collections/youtube_content/snapshots/{name}"),
    )
    .body;

    // Empty the collection, then upload peer 1's snapshot to peer 1: only shard 1 comes back.
    client(&peers[2])
        .delete_points(
            DeletePointsBuilder::new("youtube_content")
                .points(PointsIdsList { ids: ids.clone() })
                .wait(true),
        )
        .await
        .expect("deleted");
    let (content_type, body) = multipart("snapshot", &name, &bytes);
    let r = http(
        peers[1].rest_addr(),
        "POST",
        "/collections/youtube_content/snapshots/upload?priority=snapshot&wait=true",
        &[("Content-Type", &content_type)],
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let mut expected: Vec<PointId> = ids
        .iter()
        .filter(|id| qdrant_double::shard_of(id, 3) == 1)
        .cloned()
        .collect();
    expected.sort_by_key(order_key);
    assert!(!expected.is_empty() && expected.len() < ids.len());
    assert_eq!(
        ids_of(&peers[0], "youtube_content").await,
        expected.iter().map(id_text).collect::<Vec<_>>()
    );
    cluster.stop();
}

#[test]
#[should_panic(expected = "no replica of shard 0 of \"m\" on peer")]
fn setting_the_state_of_a_replica_that_is_not_there_is_a_tests_mistake() {
    let cluster = QdrantDouble::start_cluster(Options::default(), 3).expect("a cluster");
    create(&cluster, "m", 3, 1);
    // Shard 0 is on peer 0 only.
    let peer = cluster.peers()[1].peer_id;
    cluster.set_replica_state("m", 0, peer, "Dead");
}
