//! cache:: against the real Redis of tools/with-services. Each test owns one Redis db number
//! (11–14), emptied at its start and its end, so tests never see each other's keys.

mod support;

use serde_json::json;
use support::Opsh;

/// A Redis db of the test server, emptied now and when dropped.
struct TestRedis {
    url: String,
    conn: redis::Connection,
}

impl TestRedis {
    fn new(db: u8) -> TestRedis {
        let server = std::env::var("REDIS_URL").unwrap_or_else(|_| {
            panic!("REDIS_URL is not set: run the tests with `make test` (tools/with-services)")
        });
        let mut url = url::Url::parse(&server).expect("REDIS_URL is a URL");
        url.set_path(&db.to_string());
        let url = url.to_string();
        let conn = redis::Client::open(url.as_str())
            .expect("redis url")
            .get_connection()
            .expect("connect to the test Redis");
        let mut r = TestRedis { url, conn };
        r.cmd(&["FLUSHDB"]);
        r
    }

    fn cmd(&mut self, args: &[&str]) -> redis::Value {
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query(&mut self.conn).expect("redis command")
    }

    fn dbsize(&mut self) -> i64 {
        redis::cmd("DBSIZE").query(&mut self.conn).expect("DBSIZE")
    }

    fn exists(&mut self, key: &str) -> bool {
        redis::cmd("EXISTS")
            .arg(key)
            .query::<i64>(&mut self.conn)
            .expect("EXISTS")
            == 1
    }

    /// The deployment's state and some cache keys.
    fn seed_deployment(&mut self) {
        self.cmd(&["HSET", "stt:pending_approval", "job-1", "{}", "job-2", "{}"]);
        self.cmd(&["SET", "stt:daily_cost:2026-11-25", "1.25"]);
        self.cmd(&["SET", "stt:daily_cost:2026-11-26", "0.5"]);
        self.cmd(&["SET", "stt:monthly_cost:2026-11", "1.75"]);
        for i in 0..5 {
            let key = format!("embedding:1024:{i:032x}");
            self.cmd(&["SET", &key, "[0.1]", "EX", "604800"]);
        }
    }

    fn opsh(&self) -> Opsh {
        Opsh::new().env("REDIS_URL", &self.url)
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let _ = redis::cmd("FLUSHDB").query::<()>(&mut self.conn);
    }
}

fn eval(opsh: Opsh, code: &str) -> serde_json::Value {
    let run = opsh.args(["--json", "-e", code]).run();
    run.code(0);
    run.json()
}

/// A TCP proxy in front of `upstream` that holds every answer of the server for `delay` before
/// passing it on: a Redis that is that far away. Its address.
fn slow_proxy(upstream: &str, delay: std::time::Duration) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let upstream = upstream.to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let server = std::net::TcpStream::connect(&upstream).unwrap();
            let (mut c_read, mut s_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_read, &mut s_write);
            });
            let (mut s_read, mut c_write) = (server, client);
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                while let Ok(n @ 1..) = s_read.read(&mut buf) {
                    std::thread::sleep(delay);
                    if c_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    address
}

/// latency_ms is the PING's round trip: 300 ms added to each answer show in it (a latency of 0,
/// or in seconds, or one that includes the connect's round trips, would not match).
#[test]
fn ping_measures_the_round_trip_of_its_ping() {
    // A db of its own: the tests of this file run at once, and each flushes its db.
    let r = TestRedis::new(15);
    let server = url::Url::parse(&r.url).unwrap();
    let upstream = format!("{}:{}", server.host_str().unwrap(), server.port().unwrap());
    let proxy = slow_proxy(&upstream, std::time::Duration::from_millis(300));
    let ping = eval(
        Opsh::new().env("REDIS_URL", &format!("redis://{proxy}/15")),
        "cache::ping()",
    );
    let latency = ping["latency_ms"].as_f64().unwrap();
    // One round trip: at least the delay, and (on a loaded machine) well under a second more.
    assert!((300.0..1300.0).contains(&latency), "{ping}");
}

#[test]
fn reads_keys_counts_and_ttls_with_scan() {
    let mut r = TestRedis::new(11);
    for i in 0..2500 {
        r.cmd(&["SET", &format!("t:item:{i:04}"), "x"]);
    }
    r.cmd(&["SET", "t:other", "x", "EX", "100"]);
    r.cmd(&["SET", "t:other2", "x", "EX", "50"]);

    let ping = eval(r.opsh(), "cache::ping()");
    assert_eq!(ping["db"], 11);
    assert_eq!(ping["address"], json!(r.url));
    let info = eval(r.opsh(), "cache::info()");
    assert_eq!(info["db_keys"], 2502);
    assert_eq!(
        info["keyspace"]["db11"],
        json!({"keys": 2502, "expires": 2})
    );
    assert_eq!(info["persistence"]["aof_enabled"], false);

    assert_eq!(
        eval(r.opsh(), r#"cache::keys("t:item:000[0-2]")"#),
        json!(["t:item:0000", "t:item:0001", "t:item:0002"])
    );
    assert_eq!(
        eval(r.opsh(), r#"cache::keys("t:item:*", #{limit: 3}).len()"#),
        3
    );
    assert_eq!(
        eval(r.opsh(), r#"cache::keys("t:item:*", #{limit: 5000}).len()"#),
        2500
    );
    assert_eq!(eval(r.opsh(), r#"cache::count("t:item:*")"#), 2500);
    assert_eq!(eval(r.opsh(), r#"cache::count("*")"#), 2502);
    assert_eq!(eval(r.opsh(), r#"cache::count("nothing:*")"#), 0);
    let ttl = eval(r.opsh(), r#"cache::ttl_summary("t:*")"#);
    assert_eq!(ttl["keys"], 2502);
    assert_eq!(ttl["with_ttl"], 2);
    assert_eq!(ttl["without_ttl"], 2500);
    // Whole seconds may tick away while the test runs; seconds of margin, never milliseconds.
    let (min, max) = (
        ttl["min_ttl"].as_i64().unwrap(),
        ttl["max_ttl"].as_i64().unwrap(),
    );
    assert!(
        (40..=50).contains(&min) && (90..=100).contains(&max),
        "{ttl}"
    );
}

#[test]
fn delete_asks_and_dry_run_changes_nothing() {
    let mut r = TestRedis::new(12);
    r.seed_deployment();
    for i in 0..2100 {
        r.cmd(&["SET", &format!("tmp:{i}"), "x"]);
    }
    let before = r.dbsize();
    let ids = tempfile::tempdir().unwrap();
    let ids_dir = ids.path().display().to_string();
    let opsh = |r: &TestRedis| r.opsh().env("OPSH_DELETE_IDS_DIR", &ids_dir);

    let dry = eval(
        opsh(&r).args(["--dry-run"]),
        r#"cache::delete("tmp:*", #{max_delete: 2100})"#,
    );
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["matched"], 2100);
    assert_eq!(dry["deleted"], 0);
    assert_eq!(dry["sample"].as_array().unwrap().len(), 20);
    assert_eq!(r.dbsize(), before);

    // Unconfirmed without a terminal: refused (exit 3), nothing deleted.
    let run = opsh(&r)
        .args(["-e", r#"cache::delete("tmp:*", #{max_delete: 2100})"#])
        .run();
    run.code(3);
    assert!(run.stderr.contains("needs confirmation"), "{}", run.stderr);
    assert_eq!(r.dbsize(), before);

    // 2100 of 2109 keys is past the deletion budget (1000): --yes does not lift it.
    let run = opsh(&r)
        .args(["--yes", "-e", r#"cache::delete("tmp:*")"#])
        .run();
    run.code(3);
    assert!(
        run.stderr.contains("2100 of the 2109 keys of redis db 12")
            && run.stderr.contains("max_delete=2100"),
        "{}",
        run.stderr
    );
    assert_eq!(r.dbsize(), before);

    let done = eval(
        opsh(&r).args(["--yes"]),
        r#"cache::delete("tmp:*", #{max_delete: 2100})"#,
    );
    assert_eq!(
        (done["matched"].clone(), done["deleted"].clone()),
        (json!(2100), json!(2100))
    );
    assert_eq!(r.dbsize(), before - 2100);
    // The deleted keys are listed in a private file.
    let file = std::path::PathBuf::from(done["ids_file"].as_str().unwrap());
    assert!(file.starts_with(ids.path()), "{}", file.display());
    let mut keys: Vec<String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    keys.sort();
    let mut expected: Vec<String> = (0..2100).map(|i| format!("tmp:{i}")).collect();
    expected.sort();
    assert_eq!(keys, expected);

    // Deleting state says so.
    let state = eval(r.opsh().args(["--dry-run"]), r#"cache::delete("stt:*")"#);
    assert_eq!(
        state["state"],
        json!([
            {"pattern": "stt:pending_approval", "what": "STT jobs waiting for cost approval (hash)", "keys": 1, "fields": null},
            {"pattern": "stt:daily_cost:*", "what": "daily STT cost counters", "keys": 2, "fields": null},
            {"pattern": "stt:monthly_cost:*", "what": "monthly STT cost counters", "keys": 1, "fields": null},
        ])
    );
}

#[test]
fn flush_names_the_state_it_deletes_and_can_keep_the_cost_counters() {
    let mut r = TestRedis::new(13);
    let mut neighbour = TestRedis::new(14);
    neighbour.cmd(&["SET", "other-db", "stays"]);
    r.seed_deployment();

    let state = eval(r.opsh(), "cache::state()");
    assert_eq!(state[0]["fields"], 2);
    assert_eq!(state[1]["keys"], 2);

    let dry = eval(r.opsh().args(["--dry-run"]), "cache::flush()");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        (dry["keys_before"].clone(), dry["deleted"].clone()),
        (json!(9), json!(9))
    );
    let named: Vec<&str> = dry["state_deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["pattern"].as_str().unwrap())
        .collect();
    assert_eq!(
        named,
        [
            "stt:pending_approval",
            "stt:daily_cost:*",
            "stt:monthly_cost:*"
        ]
    );
    assert_eq!(r.dbsize(), 9);

    let kept = eval(
        r.opsh().args(["--yes"]),
        r#"cache::flush(#{keep: ["stt:daily_cost:*", "stt:monthly_cost:*"]})"#,
    );
    assert_eq!(kept["deleted"], 6);
    assert_eq!(kept["kept"], 3);
    assert_eq!(kept["state_deleted"][0]["pattern"], "stt:pending_approval");
    assert_eq!(kept["state_kept"].as_array().unwrap().len(), 2);
    assert_eq!(r.dbsize(), 3);
    assert!(r.exists("stt:daily_cost:2026-11-25"));
    assert!(r.exists("stt:monthly_cost:2026-11"));
    assert!(!r.exists("stt:pending_approval"));

    let all = eval(r.opsh().args(["--yes"]), "cache::flush()");
    assert_eq!(all["deleted"], 3);
    assert_eq!(r.dbsize(), 0);
    // FLUSHDB, never FLUSHALL: the next db is untouched.
    assert!(neighbour.exists("other-db"));
}

#[test]
fn an_unreachable_or_refusing_redis_is_one_clear_error_without_the_password() {
    let run = Opsh::new()
        .env("REDIS_URL", "redis://:hunter2@127.0.0.1:1/0")
        .args(["-e", "cache::ping()"])
        .run();
    run.code(3);
    assert!(
        run.stderr.starts_with(
            "opsh: error: cache::ping: redis at redis://:***@127.0.0.1:1/0 (redis.url, from REDIS_URL): connection refused"
        ),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("hunter2"));

    // The test server has no password: AUTH is refused, and the kind says so.
    let r = TestRedis::new(10);
    let mut url = url::Url::parse(&r.url).unwrap();
    url.set_password(Some("hunter2")).unwrap();
    let kind = eval(
        Opsh::new().env("REDIS_URL", url.as_str()),
        "let k = (); try { cache::ping() } catch (e) { k = [e.kind, e.address] } k",
    );
    assert_eq!(kind[0], "refused");
    assert!(!kind[1].as_str().unwrap().contains("hunter2"));
}
