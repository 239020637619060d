//! Collections, snapshots (gRPC and REST), the API key and the health check.

mod common;

use common::{
    client_with_key, create_small, http, id_text, multipart, start, status_of, upsert_ids,
};
use qdrant_client::qdrant::vectors_config::Config;
use qdrant_client::qdrant::{
    CountPointsBuilder, CreateCollectionBuilder, DeleteSnapshotRequestBuilder, Distance, PointId,
    ScrollPointsBuilder, VectorParamsBuilder, VectorsConfigBuilder,
};
use qdrant_double::{DEFAULT_SERVER_VERSION, Options, QdrantDouble};
use sha2::{Digest, Sha256};

#[tokio::test]
async fn collections_are_created_listed_described_and_deleted_like_qdrant() {
    let (_double, client) = start(Options::default());
    client
        .create_collection(
            CreateCollectionBuilder::new("youtube_content")
                .vectors_config(VectorParamsBuilder::new(1024, Distance::Cosine)),
        )
        .await
        .unwrap();
    let mut named = VectorsConfigBuilder::default();
    named.add_named_vector_params("text", VectorParamsBuilder::new(384, Distance::Dot));
    named.add_named_vector_params("image", VectorParamsBuilder::new(512, Distance::Euclid));
    client
        .create_collection(CreateCollectionBuilder::new("multi").vectors_config(named))
        .await
        .unwrap();

    let names: Vec<String> = client
        .list_collections()
        .await
        .unwrap()
        .collections
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["multi", "youtube_content"]);
    assert!(client.collection_exists("youtube_content").await.unwrap());
    assert!(!client.collection_exists("youtube_summaries").await.unwrap());

    let info = client
        .collection_info("youtube_content")
        .await
        .unwrap()
        .result
        .unwrap();
    assert_eq!(
        info.status,
        qdrant_client::qdrant::CollectionStatus::Green as i32
    );
    assert_eq!(info.points_count, Some(0));
    let params = info.config.unwrap().params.unwrap();
    match params.vectors_config.unwrap().config.unwrap() {
        Config::Params(p) => {
            assert_eq!(p.size, 1024);
            assert_eq!(p.distance, Distance::Cosine as i32);
        }
        other => panic!("expected a single unnamed vector: {other:?}"),
    }
    let info = client
        .collection_info("multi")
        .await
        .unwrap()
        .result
        .unwrap();
    match info
        .config
        .unwrap()
        .params
        .unwrap()
        .vectors_config
        .unwrap()
        .config
        .unwrap()
    {
        Config::ParamsMap(map) => {
            assert_eq!(map.map.len(), 2);
            assert_eq!(map.map["text"].size, 384);
            assert_eq!(map.map["text"].distance, Distance::Dot as i32);
            assert_eq!(map.map["image"].size, 512);
            assert_eq!(map.map["image"].distance, Distance::Euclid as i32);
        }
        other => panic!("expected named vectors: {other:?}"),
    }

    let err = client
        .create_collection(
            CreateCollectionBuilder::new("multi")
                .vectors_config(VectorParamsBuilder::new(4, Distance::Cosine)),
        )
        .await
        .unwrap_err();
    let status = status_of(err);
    assert_eq!(status.code(), tonic::Code::AlreadyExists);
    assert_eq!(
        status.message(),
        "Wrong input: Collection `multi` already exists!"
    );

    let err = client.collection_info("nope").await.unwrap_err();
    let status = status_of(err);
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(
        status.message(),
        "Not found: Collection `nope` doesn't exist!"
    );

    assert!(client.delete_collection("multi").await.unwrap().result);
    assert!(!client.delete_collection("multi").await.unwrap().result);
    assert!(!client.collection_exists("multi").await.unwrap());
}

#[tokio::test]
async fn points_count_in_collection_info_follows_upserts_and_deletes() {
    let (_double, client) = start(Options::default());
    create_small(&client, "c").await;
    upsert_ids(&client, "c", &[1u64.into(), 2u64.into(), 3u64.into()]).await;
    let info = client.collection_info("c").await.unwrap().result.unwrap();
    assert_eq!(info.points_count, Some(3));
}

#[tokio::test]
async fn health_check_reports_title_and_the_chosen_version() {
    let (double, client) = start(Options::default());
    let health = client.health_check().await.unwrap();
    assert_eq!(health.title, "qdrant - vector search engine");
    assert_eq!(health.version, DEFAULT_SERVER_VERSION);
    let root = http(double.rest_addr(), "GET", "/", &[], b"");
    assert_eq!(root.status, 200);
    assert_eq!(
        root.json(),
        serde_json::json!({"title": "qdrant - vector search engine", "version": DEFAULT_SERVER_VERSION})
    );
    let healthz = http(double.rest_addr(), "GET", "/healthz", &[], b"");
    assert_eq!(
        (healthz.status, healthz.text().as_str()),
        (200, "healthz check passed")
    );

    let (_old, client) = start(Options::default().server_version("1.12.4"));
    assert_eq!(client.health_check().await.unwrap().version, "1.12.4");
}

#[tokio::test]
async fn the_api_key_is_required_as_qdrant_requires_it() {
    let double = QdrantDouble::start(Options::default().api_key("s3cret")).unwrap();

    // The health check needs no key (Qdrant lets it through), so a ping cannot tell a bad key.
    let anonymous = client_with_key(&double, None);
    assert_eq!(
        anonymous.health_check().await.unwrap().title,
        "qdrant - vector search engine"
    );
    let status = status_of(anonymous.list_collections().await.unwrap_err());
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert_eq!(
        status.message(),
        "Must provide an API key or an Authorization bearer token"
    );
    let wrong = client_with_key(&double, Some("guess"));
    let status = status_of(wrong.collection_exists("x").await.unwrap_err());
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert_eq!(status.message(), "Invalid API key or JWT");

    let right = client_with_key(&double, Some("s3cret"));
    create_small(&right, "k").await;
    assert!(right.collection_exists("k").await.unwrap());

    // REST: snapshots need the key; the version and health endpoints do not.
    let rest = double.rest_addr();
    let refused = http(rest, "GET", "/collections/k/snapshots", &[], b"");
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.text(),
        "Must provide an API key or an Authorization bearer token"
    );
    let refused = http(
        rest,
        "GET",
        "/collections/k/snapshots",
        &[("api-key", "guess")],
        b"",
    );
    assert_eq!(
        (refused.status, refused.text().as_str()),
        (401, "Invalid API key or JWT")
    );
    let allowed = http(
        rest,
        "GET",
        "/collections/k/snapshots",
        &[("api-key", "s3cret")],
        b"",
    );
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.json()["result"], serde_json::json!([]));
    let bearer = http(
        rest,
        "GET",
        "/collections/k/snapshots",
        &[("authorization", "Bearer s3cret")],
        b"",
    );
    assert_eq!(bearer.status, 200);
    assert_eq!(http(rest, "GET", "/", &[], b"").status, 200);
    assert_eq!(http(rest, "GET", "/healthz", &[], b"").status, 200);
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn snapshots_are_created_listed_downloaded_and_checksummed_like_qdrant() {
    let dir = tempfile::tempdir().unwrap();
    let (double, client) = start(Options::default().snapshots_dir(dir.path()));
    create_small(&client, "youtube_content").await;
    let ids: Vec<PointId> = (0..50u64)
        .map(PointId::from)
        .chain(["5d41402abc4b2a76b9719d911017c592".to_string().into()])
        .collect();
    upsert_ids(&client, "youtube_content", &ids).await;

    // gRPC create: Qdrant's name, size and sha256 checksum.
    let created = client
        .create_snapshot("youtube_content")
        .await
        .unwrap()
        .snapshot_description
        .unwrap();
    let name = created.name.clone();
    let parts: Vec<&str> = name
        .strip_prefix("youtube_content-")
        .and_then(|n| n.strip_suffix(".snapshot"))
        .expect("<collection>-<peer id>-<timestamp>.snapshot")
        .splitn(2, '-')
        .collect();
    assert!(parts[0].parse::<u64>().is_ok(), "peer id in {name}");
    assert!(
        chrono::NaiveDateTime::parse_from_str(parts[1], "%Y-%m-%d-%H-%M-%S").is_ok(),
        "timestamp in {name}"
    );
    assert!(created.creation_time.is_some());
    assert!(dir.path().join("youtube_content").join(&name).is_file());

    // REST list shows the same description.
    let rest = double.rest_addr();
    let listed = http(
        rest,
        "GET",
        "/collections/youtube_content/snapshots",
        &[],
        b"",
    );
    assert_eq!(listed.status, 200);
    let body = listed.json();
    assert_eq!(body["status"], "ok");
    assert!(body["time"].is_f64());
    let list = body["result"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["name"], name.as_str());
    assert_eq!(list[0]["size"], created.size);
    assert_eq!(list[0]["checksum"].as_str(), created.checksum.as_deref());
    let created_at = list[0]["creation_time"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(created_at, "%Y-%m-%dT%H:%M:%S%.f").is_ok(),
        "{created_at}"
    );

    // Download: the bytes' sha256 is the checksum, their length the size.
    let download = http(
        rest,
        "GET",
        &format!("/collections/youtube_content/snapshots/{name}"),
        &[],
        b"",
    );
    assert_eq!(download.status, 200);
    assert_eq!(download.body.len() as i64, created.size);
    assert_eq!(Some(sha256_hex(&download.body)), created.checksum);

    // REST create and gRPC list agree.
    std::thread::sleep(std::time::Duration::from_millis(1100)); // names are per second
    let made = http(
        rest,
        "POST",
        "/collections/youtube_content/snapshots",
        &[],
        b"",
    );
    assert_eq!(made.status, 200);
    let second = made.json()["result"]["name"].as_str().unwrap().to_string();
    assert_ne!(second, name);
    let names: Vec<String> = client
        .list_snapshots("youtube_content")
        .await
        .unwrap()
        .snapshot_descriptions
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, [name.clone(), second.clone()]);

    // Delete one; downloading it is then a 404 in Qdrant's error shape.
    client
        .delete_snapshot(DeleteSnapshotRequestBuilder::new(
            "youtube_content",
            &second,
        ))
        .await
        .unwrap();
    let gone = http(
        rest,
        "GET",
        &format!("/collections/youtube_content/snapshots/{second}"),
        &[],
        b"",
    );
    assert_eq!(gone.status, 404);
    assert_eq!(
        gone.json()["status"]["error"],
        format!("Not found: Snapshot {second} not found")
    );
    let missing = http(rest, "GET", "/collections/nope/snapshots", &[], b"");
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.json()["status"]["error"],
        "Not found: Collection `nope` doesn't exist!"
    );
    let traversal = http(
        rest,
        "GET",
        "/collections/youtube_content/snapshots/..%2F..%2Fetc%2Fpasswd",
        &[],
        b"",
    );
    assert_eq!(traversal.status, 404);

    // Upload restores the collection, replacing what it holds now.
    upsert_ids(&client, "youtube_content", &[(1000u64).into()]).await;
    client
        .delete_points(
            qdrant_client::qdrant::DeletePointsBuilder::new("youtube_content")
                .points(qdrant_client::qdrant::PointsIdsList {
                    ids: vec![0u64.into(), 1u64.into()],
                })
                .wait(true),
        )
        .await
        .unwrap();
    let (content_type, body) = multipart("snapshot", &name, &download.body);
    let uploaded = http(
        rest,
        "POST",
        &format!(
            "/collections/youtube_content/snapshots/upload?checksum={}",
            sha256_hex(&download.body)
        ),
        &[("content-type", &content_type)],
        &body,
    );
    assert_eq!(uploaded.status, 200, "{}", uploaded.text());
    assert_eq!(uploaded.json()["result"], true);
    let restored = client
        .scroll(
            ScrollPointsBuilder::new("youtube_content")
                .limit(100)
                .with_vectors(true),
        )
        .await
        .unwrap();
    let restored_ids: Vec<String> = restored
        .result
        .iter()
        .map(|p| id_text(p.id.as_ref().unwrap()))
        .collect();
    let expected: Vec<String> = (0..50u64)
        .map(|i| i.to_string())
        .chain(["5d41402a-bc4b-2a76-b971-9d911017c592".to_string()])
        .collect();
    assert_eq!(restored_ids, expected);
    assert_eq!(
        restored.result[7]
            .payload
            .get("content_id")
            .map(ToString::to_string),
        Some("7".to_string()),
        "payload restored"
    );
    assert!(restored.result[7].vectors.is_some(), "vectors restored");

    // Upload into a new name creates that collection with the same vector configuration.
    let uploaded = http(
        rest,
        "POST",
        "/collections/copy/snapshots/upload",
        &[("content-type", &content_type)],
        &body,
    );
    assert_eq!(uploaded.status, 200, "{}", uploaded.text());
    let count = client
        .count(CountPointsBuilder::new("copy").exact(true))
        .await
        .unwrap();
    assert_eq!(count.result.unwrap().count, 51);
    let info = client
        .collection_info("copy")
        .await
        .unwrap()
        .result
        .unwrap();
    match info
        .config
        .unwrap()
        .params
        .unwrap()
        .vectors_config
        .unwrap()
        .config
        .unwrap()
    {
        Config::Params(p) => assert_eq!((p.size, p.distance), (4, Distance::Cosine as i32)),
        other => panic!("{other:?}"),
    }

    // A wrong checksum is refused and changes nothing.
    let refused = http(
        rest,
        "POST",
        &format!(
            "/collections/copy/snapshots/upload?checksum={}",
            "0".repeat(64)
        ),
        &[("content-type", &content_type)],
        &multipart("snapshot", "x.snapshot", b"garbage").1,
    );
    assert_eq!(refused.status, 400);
    // The file's sum first, the given one second, as 1.18.3 words it.
    assert_eq!(
        refused.json()["status"]["error"],
        serde_json::json!(format!(
            "Checksum mismatch: expected {}, actual {}",
            sha256_hex(b"garbage"),
            "0".repeat(64)
        ))
    );
}

#[test]
fn starts_and_stops_from_a_plain_test_without_a_runtime() {
    let double = QdrantDouble::start(Options::default()).unwrap();
    assert!(double.grpc_url().starts_with("http://127.0.0.1:"));
    assert!(double.rest_url().starts_with("http://127.0.0.1:"));
    assert_ne!(double.grpc_addr().port(), double.rest_addr().port());
    let healthz = http(double.rest_addr(), "GET", "/healthz", &[], b"");
    assert_eq!(healthz.status, 200);
    let rest = double.rest_addr();
    double.stop();
    assert!(std::net::TcpStream::connect(rest).is_err(), "stopped");
}

#[test]
fn a_busy_port_is_an_error_that_names_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = QdrantDouble::start(Options {
        grpc_port: port,
        ..Options::default()
    })
    .err()
    .expect("the port is taken");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

/// A demo loader seeds real Qdrant or the double with the same two curl commands.
#[tokio::test]
async fn collections_and_points_are_created_over_rest_as_qdrant_takes_them() {
    let (double, client) = start(Options::default());
    let rest = double.rest_addr();
    let json = [("content-type", "application/json")];
    let created = http(
        rest,
        "PUT",
        "/collections/demo",
        &json,
        br#"{"vectors": {"size": 3, "distance": "Cosine"}}"#,
    );
    assert_eq!(created.status, 200, "{}", created.text());
    assert_eq!(created.json()["result"], true);
    let again = http(
        rest,
        "PUT",
        "/collections/demo",
        &json,
        br#"{"vectors": {"size": 3, "distance": "Cosine"}}"#,
    );
    assert_eq!(again.status, 409, "{}", again.text());
    let upserted = http(
        rest,
        "PUT",
        "/collections/demo/points?wait=true",
        &json,
        br#"{"points": [
            {"id": 7, "vector": [1, 0, 0], "payload": {"content_id": 1, "tags": ["a"]}},
            {"id": "5d41402abc4b2a76b9719d911017c592", "vector": [0, 1, 0], "payload": {"content_id": 2}}
        ]}"#,
    );
    assert_eq!(upserted.status, 200, "{}", upserted.text());
    assert_eq!(upserted.json()["result"]["status"], "completed");
    let scrolled = client
        .scroll(
            ScrollPointsBuilder::new("demo")
                .limit(10)
                .with_payload(true),
        )
        .await
        .unwrap();
    let ids: Vec<String> = scrolled
        .result
        .iter()
        .map(|p| id_text(p.id.as_ref().unwrap()))
        .collect();
    assert_eq!(ids, ["7", "5d41402a-bc4b-2a76-b971-9d911017c592"]);
    assert_eq!(
        scrolled.result[0].payload["content_id"].kind,
        Some(qdrant_client::qdrant::value::Kind::IntegerValue(1))
    );
    // A wrong vector size is refused as Qdrant refuses it.
    let wrong = http(
        rest,
        "PUT",
        "/collections/demo/points",
        &json,
        br#"{"points": [{"id": 8, "vector": [1, 0], "payload": {}}]}"#,
    );
    assert_eq!(wrong.status, 400, "{}", wrong.text());
    let missing = http(
        rest,
        "PUT",
        "/collections/nope/points",
        &json,
        br#"{"points": []}"#,
    );
    assert_eq!(missing.status, 404, "{}", missing.text());
}
