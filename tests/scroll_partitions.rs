//! The partitioned scroll (qdrant.scroll_partitions) through the binary: qdrant::ids and the
//! integrity check read every point exactly once and in Qdrant's order whatever the number of
//! ranges, with ids on and around the places ranges are split (powers of two, the halves of the
//! UUID space, the first and last of each kind), numbers and UUIDs mixed, and collections smaller
//! than the number of ranges. Against the Qdrant double, and also against a real Qdrant server
//! when OPSH_TEST_QDRANT_BIN names its binary (e.g. the unpacked ../shared/tools/qdrant-1.18.3.xz).

#[path = "support/seed.rs"]
mod seed;
mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Opsh, TestDb};

/// Numbers on and beside the bits a split may fall on, and a run counted up.
fn numbers() -> Vec<u64> {
    let mut v: Vec<u64> = vec![0, 1, 2, 3];
    for bit in [7, 8, 31, 32, 62, 63] {
        let p = 1u64 << bit;
        v.extend([p - 1, p, p + 1]);
    }
    v.extend(1000..1300);
    v.extend([u64::MAX - 1, u64::MAX]);
    v.sort_unstable();
    v.dedup();
    v
}

/// UUIDs on and beside the halves and quarters of the UUID space, its ends, and some spread.
fn uuids() -> Vec<u128> {
    let mut v: Vec<u128> = vec![0, 1, u128::MAX - 1, u128::MAX];
    for q in [1u128 << 126, 1 << 127, 3 << 126] {
        v.extend([q - 1, q, q + 1]);
    }
    v.extend((1..300u128).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)));
    v.sort_unstable();
    v.dedup();
    v
}

fn uuid_text(u: u128) -> String {
    uuid::Uuid::from_u128(u).to_string()
}

/// Every id of the mixed collection, in Qdrant's order (numbers, then UUIDs by value).
fn mixed_ids() -> Vec<String> {
    let nums = numbers().into_iter().map(|n| n.to_string());
    nums.chain(uuids().into_iter().map(uuid_text)).collect()
}

fn spec() -> Value {
    let mut mixed: Vec<Value> = numbers().into_iter().map(|n| json!({"id": n})).collect();
    mixed.extend(uuids().into_iter().map(|u| json!({"id": uuid_text(u)})));
    json!({"collections": {
        "mixed": {"size": 4, "points": mixed},
        "uuids": {"size": 4, "points": uuids().into_iter().map(|u| json!({"id": uuid_text(u)})).collect::<Vec<_>>()},
        "two": {"size": 4, "points": [{"id": 5}, {"id": uuid_text(1 << 127)}]},
        "one": {"size": 4, "points": [{"id": u64::MAX}]},
        "empty": {"size": 4},
    }})
}

/// A Qdrant to run opsh against: the double, or a real server from OPSH_TEST_QDRANT_BIN.
enum Server {
    Double(qdrant_double::Running),
    Real {
        child: Child,
        grpc: u16,
        rest: u16,
        _dir: tempfile::TempDir,
    },
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Server::Real { child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl Server {
    fn double() -> Server {
        Server::Double(qdrant_double::QdrantDouble::start(Default::default()).expect("double"))
    }

    fn real(binary: PathBuf) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let (grpc, rest) = (free_port(), free_port());
        let child = Command::new(binary)
            .current_dir(dir.path())
            .env("QDRANT__SERVICE__HOST", "127.0.0.1")
            .env("QDRANT__SERVICE__HTTP_PORT", rest.to_string())
            .env("QDRANT__SERVICE__GRPC_PORT", grpc.to_string())
            .env("QDRANT__STORAGE__STORAGE_PATH", dir.path().join("storage"))
            .env(
                "QDRANT__STORAGE__SNAPSHOTS_PATH",
                dir.path().join("snapshots"),
            )
            .env("QDRANT__TELEMETRY_DISABLED", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the real Qdrant starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        for port in [grpc, rest] {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "Qdrant never opened port {port}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Server::Real {
            child,
            grpc,
            rest,
            _dir: dir,
        }
    }

    fn urls(&self) -> (String, String) {
        match self {
            Server::Double(d) => (d.grpc_url(), d.rest_url()),
            Server::Real { grpc, rest, .. } => (
                format!("http://127.0.0.1:{grpc}"),
                format!("http://127.0.0.1:{rest}"),
            ),
        }
    }

    fn opsh(&self, partitions: usize) -> Opsh {
        let (grpc, rest) = self.urls();
        Opsh::new()
            .env("QDRANT_URL", &grpc)
            .env("OPSH_QDRANT_REST_URL", &rest)
            .env("OPSH_QDRANT_SCROLL_PARTITIONS", &partitions.to_string())
    }
}

/// The double, and the real server too when its binary is given.
fn servers() -> Vec<(&'static str, Server)> {
    let mut out = vec![("the double", Server::double())];
    if let Some(bin) = std::env::var_os("OPSH_TEST_QDRANT_BIN") {
        out.push(("a real Qdrant", Server::real(bin.into())));
    }
    for (_, s) in &out {
        seed::seed(&s.urls().0, &spec());
    }
    out
}

fn ids(server: &Server, k: usize, collection: &str, page: usize) -> Vec<String> {
    let run = server
        .opsh(k)
        .args([
            "--json",
            "-e",
            &format!("qdrant::ids({collection:?}, #{{page_size: {page}}})"),
        ])
        .run();
    run.code(0);
    serde_json::from_value(run.json()).unwrap()
}

#[test]
fn every_id_once_in_qdrants_order_whatever_the_ranges_and_pages() {
    let all = mixed_ids();
    let only_uuids: Vec<String> = uuids().into_iter().map(uuid_text).collect();
    for (name, server) in servers() {
        for k in [1, 2, 3, 5, 16] {
            for page in [1, 7, 10_000] {
                if page == 1 && k > 3 {
                    continue;
                }
                let got = ids(&server, k, "mixed", page);
                assert_eq!(got, all, "{name}: k={k}, page {page}");
                let got = ids(&server, k, "uuids", page);
                assert_eq!(got, only_uuids, "{name}: k={k}, page {page}");
            }
        }
    }
}

#[test]
fn collections_smaller_than_the_ranges_are_read_whole() {
    for (name, server) in servers() {
        for k in [1, 2, 8, 64] {
            assert_eq!(
                ids(&server, k, "two", 1),
                ["5".to_string(), uuid_text(1 << 127)],
                "{name}: k={k}"
            );
            assert_eq!(ids(&server, k, "one", 10), [u64::MAX.to_string()], "{name}");
            assert!(ids(&server, k, "empty", 10).is_empty(), "{name}");
        }
    }
}

/// The by-id comparison merges the ranges' points against the rows in order: the same counts
/// and lists with one range as with many.
#[test]
fn the_integrity_check_finds_the_same_differences_with_any_number_of_ranges() {
    let db = TestDb::new();
    db.exec("INSERT INTO channels (id, name, url, platform) VALUES (1, 'c', 'u', 'youtube');
             INSERT INTO content (id, channel_id, external_id, title, url) VALUES (1, 1, 'v', 't', 'u');");
    // Every third id has no row (an orphan), and two rows have no point (missing); UUIDs are
    // written in their simple (MD5-like) form, as older chunk ids are, unless that form is all
    // digits (opsh reads such a chunk id as the number it spells).
    let all = mixed_ids();
    let mut rows: Vec<String> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 0)
        .map(|(_, id)| match id.replace('-', "") {
            simple if id.contains('-') && !simple.bytes().all(|b| b.is_ascii_digit()) => simple,
            _ => id.clone(),
        })
        .collect();
    rows.extend(["123456".to_string(), uuid_text(42)]);
    let values: Vec<String> = rows
        .iter()
        .map(|id| format!("(1, '{id}', 'mixed', 'x')"))
        .collect();
    db.exec(&format!(
        "INSERT INTO vector_mappings (content_id, chunk_id, vector_collection, chunk_text) VALUES {}",
        values.join(", ")
    ));
    let orphans: Vec<String> = all.iter().step_by(3).cloned().collect();
    let check = r#"let c = integrity::check(#{pairs: [#{name: "m", table: "vector_mappings",
        id_column: "chunk_id", filter: "vector_collection = 'mixed'", collection: "mixed"}],
        page_size: 5});
        let p = c.pairs[0];
        #{counts: [p.rows, p.points, p.matched, p.missing, p.orphans],
          orphans: integrity::orphans("m"), missing: integrity::missing("m")}"#;
    for (name, server) in servers() {
        for k in [1, 2, 4, 9] {
            let run = server.opsh(k).db(&db).args(["--json", "-e", check]).run();
            run.code(0);
            let got = run.json();
            assert_eq!(
                got["counts"],
                json!([rows.len(), all.len(), rows.len() - 2, 2, orphans.len()]),
                "{name}: k={k}"
            );
            assert_eq!(got["orphans"], json!(orphans), "{name}: k={k}");
            assert_eq!(
                got["missing"],
                json!(["123456", uuid_text(42)]),
                "{name}: k={k}"
            );
        }
    }
}
