//! `opsh top`: `--once` frames compared whole against real PostgreSQL, Redis and Docker and the
//! Qdrant double; the interactive view driven in tmux (send-keys, capture-pane) as an operator
//! would use it.

#[path = "support/seed.rs"]
mod seed;
mod support;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pretty_assertions::assert_eq;
use regex::Regex;
use support::{Opsh, TestDb};

const BASE_SQL: &str = include_str!("fixtures/examples.sql");
const QDRANT_SQL: &str = include_str!("fixtures/examples-qdrant.sql");
const QDRANT_POINTS: &str = include_str!("fixtures/examples-qdrant.json");

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A database with the examples' jobs and vectors, the Qdrant double seeded to match, a
/// container of a Compose project of its own, and a Redis db of the test's own.
struct Env {
    db: TestDb,
    qdrant: qdrant_double::Running,
    project: String,
    redis_db: u32,
}

impl Env {
    /// A second service, `ticker`, whose container prints "tick N" every 0.2 s.
    fn with_ticker(redis_db: u32) -> Env {
        let env = Env::new(redis_db);
        docker(&[
            "run",
            "-d",
            "--name",
            &format!("{}_ticker_1", env.project),
            "--label",
            &format!("com.docker.compose.project={}", env.project),
            "--label",
            "com.docker.compose.service=ticker",
            "--label",
            "com.docker.compose.oneoff=False",
            &image(),
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done",
        ]);
        env
    }

    fn new(redis_db: u32) -> Env {
        let db = TestDb::new();
        db.exec(BASE_SQL);
        db.exec(QDRANT_SQL);
        let qdrant =
            qdrant_double::QdrantDouble::start(qdrant_double::Options::default()).expect("double");
        let points = serde_json::from_str(QDRANT_POINTS).unwrap();
        seed::seed(&qdrant.grpc_url(), &points);
        let project = format!(
            "opshtop{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        docker(&[
            "run",
            "-d",
            "--name",
            &format!("{project}_web_1"),
            "--label",
            &format!("com.docker.compose.project={project}"),
            "--label",
            "com.docker.compose.service=web",
            "--label",
            "com.docker.compose.oneoff=False",
            &image(),
            "sleep",
            "3600",
        ]);
        Env {
            db,
            qdrant,
            project,
            redis_db,
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        let redis = std::env::var("REDIS_URL").expect("REDIS_URL (tools/with-services)");
        let redis = Regex::new(r"/\d+$")
            .unwrap()
            .replace(&redis, format!("/{}", self.redis_db).as_str())
            .into_owned();
        vec![
            ("DATABASE_URL".into(), self.db.url.clone()),
            ("REDIS_URL".into(), redis),
            ("QDRANT_URL".into(), self.qdrant.grpc_url()),
            ("OPSH_QDRANT_REST_URL".into(), self.qdrant.rest_url()),
            ("COMPOSE_PROJECT_NAME".into(), self.project.clone()),
            ("OPSH_OUTPUT_TIMEZONE".into(), "utc".into()),
        ]
    }

    fn opsh(&self) -> Opsh {
        self.env()
            .iter()
            .fold(Opsh::new(), |o, (k, v)| o.env(k, v))
            .env("COLUMNS", "110")
            .env("LINES", "34")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for service in ["web", "ticker"] {
            let _ = Command::new("docker")
                .args(["rm", "-f", &format!("{}_{service}_1", self.project)])
                .output();
        }
    }
}

fn image() -> String {
    std::env::var("OPSH_TEST_BUSYBOX_IMAGE").unwrap_or_else(|_| "opsh-test-busybox:latest".into())
}

/// A Redis db of the test server, emptied.
fn redis(db: u32) -> redis::Connection {
    let url = std::env::var("REDIS_URL").expect("REDIS_URL (tools/with-services)");
    let url = Regex::new(r"/\d+$")
        .unwrap()
        .replace(&url, format!("/{db}").as_str())
        .into_owned();
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("FLUSHDB").exec(&mut conn).unwrap();
    conn
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The frame with what moves between runs (the clock, CPU, memory, uptime, the host's
/// figures) masked.
fn masked(frame: &str) -> String {
    let rules = [
        (r"\d\d:\d\d:\d\d", "HH:MM:SS"),
        (
            r"running +(\S+ +)?\d+\.\d%\s+[\d.]+ \w*B +\d+\w( \d+\w)? +",
            "running  CPU MEMORY UPTIME ",
        ),
        (
            r"memory [\d.]+ \w*B of [\d.]+ \w*B \(\d+%\), swap [\d.]+ \w*B of [\d.]+ \w*B *",
            "HOST MEMORY ",
        ),
        (
            r"disk /\S*: [\d.]+ \w*B of [\d.]+ \w*B \(\d+%\) *",
            "HOST DISK ",
        ),
        (
            r"memory [\d.]+ \w*B( of [\d.]+ \w*B| \(no limit\)) *",
            "REDIS MEMORY ",
        ),
        (r"server \d[\w.]* *", "server VERSION "),
        (r"\(\ds ago\)", "(Ns ago)"),
        (r" \ds ago: ", " Ns ago: "),
    ];
    let mut text = frame.to_string();
    for (pattern, with) in rules {
        text = Regex::new(pattern)
            .unwrap()
            .replace_all(&text, with)
            .into_owned();
    }
    // Masks change widths; trailing blanks would differ by them.
    text.lines()
        .map(|l| l.trim_end().to_string() + "\n")
        .collect()
}

#[test]
fn once_prints_the_whole_stack_as_one_frame() {
    let env = Env::new(11);
    let run = env.opsh().args(["top", "--once"]).run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The examples' jobs (two stuck for 2 h and 3 h, one processing for 5 minutes) and
    // vectors (counts equal to their rows), a busybox container, an empty Redis db.
    assert_eq!(
        masked(&run.stdout),
        r#"opsh top  every 2s  HH:MM:SS
┌ containers ────────────────────────────────────────────────────────────────────────────────────────────────┐
│service                                            state      health     cpu     memory    uptime   restarts│
│▶web                                               running  CPU MEMORY UPTIME 0       │
└────────────────────────────────────────────────────────────────────────────────────────────────────────────┘
┌ job queue ────────────────────────────────────────────────┐┌ vectors ──────────────────────────────────────┐
│job type              pending  processing completed failed ││youtube_content              4 points  green   │
│extract_transcript    1        1          1         0      ││youtube_summaries            2 points  green   │
│process_audio         0        1          0         0      ││no check-data recorded; counts (Ns ago):       │
│vectorize             1        1          1         1      ││  youtube_content: 4 = 4 rows, match           │
│oldest processing: job 2 (vectorize), 3h 0m                ││  youtube_summaries: 2 = 2 rows, match         │
│stuck (processing > 1h): 2                                 ││                                               │
│finished/min, 15m: 0                                       ││                                               │
│                                                           ││                                               │
└───────────────────────────────────────────────────────────┘└───────────────────────────────────────────────┘
┌ redis ───────────────────────────────────┐┌ host ──────────────────────────────────────────────────────────┐
│REDIS MEMORY ││HOST MEMORY │
│keys   0                                  ││HOST DISK │
│server VERSION ││                                                                │
└──────────────────────────────────────────┘│                                                                │
┌ stt spend ───────────────────────────────┐│                                                                │
│not in use yet: no stt_cost_tracking      ││                                                                │
│approvals: none asked yet                 ││                                                                │
│                                          ││                                                                │
│                                          ││                                                                │
│                                          ││                                                                │
│                                          ││                                                                │
│                                          ││                                                                │
│                                          ││                                                                │
│                                          ││                                                                │
│                                          ││                                                                │
│                                          ││                                                                │
└──────────────────────────────────────────┘└────────────────────────────────────────────────────────────────┘
↑↓ select  p pause/unpause  s safe-stop  r reset stuck  l logs  c check-data  ? help  q quit
"#
    );
}

#[test]
fn a_pane_whose_backend_is_down_says_why_and_the_others_still_show() {
    let env = Env::new(12);
    let run = env
        .opsh()
        .env("REDIS_URL", "redis://127.0.0.1:1/0")
        .env("QDRANT_URL", "http://127.0.0.1:1")
        .args(["top", "--once"])
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let got = masked(&run.stdout);
    assert!(
        got.contains("│unavailable: qdrant at http://127.0.0.1:1 "),
        "{got}"
    );
    assert!(got.contains("│unavailable: redis at"), "{got}");
    assert!(
        got.contains("│vectorize             1        1          1         1"),
        "{got}"
    );
    assert!(got.contains("│▶web"), "{got}");
    // The STT pane: its PostgreSQL part still read (no table: not in use), Redis's part says
    // what failed.
    assert!(
        got.contains("│not in use yet: no stt_cost_tracking"),
        "{got}"
    );
    assert!(got.contains("│approvals unavailable: redis at"), "{got}");
}

/// The STT pane reads stt_cost_tracking (the workers' table, here the examples') and the
/// approvals waiting in Redis.
#[test]
fn the_stt_pane_shows_spend_against_budget_and_waiting_approvals() {
    let env = Env::new(15);
    env.db.exec(include_str!("fixtures/examples-stt.sql"));
    let mut conn = redis(15);
    let requested = (chrono::Utc::now().naive_utc() - chrono::Duration::minutes(10))
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string();
    let approval = serde_json::json!({
        "approval_id": "stt_approval_7_1764000007.25", "content_id": 7, "title": "Video 7",
        "channel_name": "Finance Daily", "duration_seconds": 2400.0, "duration_minutes": 40.0,
        "estimated_cost_usd": 0.24, "requested_at": requested, "status": "pending"
    });
    redis::cmd("HSET")
        .arg("stt:pending_approval")
        .arg("stt_approval_7_1764000007.25")
        .arg(approval.to_string())
        .exec(&mut conn)
        .unwrap();
    let run = env.opsh().args(["top", "--once"]).run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let got = masked(&run.stdout);
    // Today: $0.90 and $0.30 paid, the whisper-server run free; last month's run in neither.
    let pane: Vec<String> = got
        .lines()
        .skip_while(|l| !l.starts_with("┌ stt spend"))
        .skip(1)
        .take(3)
        .map(|l| l.split("││").next().unwrap_or(l).trim_end())
        .map(|l| {
            Regex::new(r"10m \d+s")
                .unwrap()
                .replace(l, "10m Ns")
                .into_owned()
        })
        .collect();
    assert_eq!(
        pane,
        [
            "│today $1.20 of $10.00 (12%), 2 runs",
            "│month $1.20 of $100.00 (1%), 2 runs",
            "│1 approval waiting ($0.24), oldest 10m Ns",
        ],
        "{got}"
    );
}

/// check-data's outcome is recorded in the audit; the vectors pane shows the last one and its
/// age instead of the count comparison — from opsh_audit, or from the local file when the
/// table is missing (the deployment's init.sql-only database).
#[test]
fn the_vectors_pane_shows_the_last_check_data_from_the_audit() {
    let env = Env::new(10);
    let vectors = |frame: &str| -> Vec<String> {
        frame
            .lines()
            .skip_while(|l| !l.contains("┌ vectors"))
            .skip(1)
            .take(4)
            .map(|l| {
                l.rsplit_once("││")
                    .map_or(l, |(_, r)| r)
                    .trim_end_matches('│')
                    .trim_end()
                    .to_string()
            })
            .collect()
    };
    let before = env.opsh().args(["top", "--once"]).run();
    assert_eq!(before.code, 0, "{}", before.stderr);
    assert_eq!(
        vectors(&masked(&before.stdout)),
        [
            "youtube_content              4 points  green",
            "youtube_summaries            2 points  green",
            "no check-data recorded; counts (Ns ago):",
            "  youtube_content: 4 = 4 rows, match",
        ]
    );
    // The examples hold orphans, missing and invalid ids behind equal counts: check-data finds
    // them and records its outcome.
    let check = env.opsh().args(["check-data"]).run();
    assert_eq!(check.code, 1, "{}{}", check.stdout, check.stderr);
    let outcome = "3 orphans, 2 missing, 1 invalid, 1 content item without vectors";
    assert_eq!(
        env.db.lines(
            "SELECT concat_ws('|', procedure, op, count, dry_run::text, outcome) FROM opsh_audit"
        ),
        [format!("check-data|integrity::check|6|false|{outcome}")]
    );
    let after = env.opsh().args(["top", "--once"]).run();
    assert_eq!(after.code, 0, "{}", after.stderr);
    assert_eq!(
        vectors(&masked(&after.stdout))[2..],
        [
            "check-data Ns ago: 3 orphans, 2 missing, 1",
            "invalid, 1 content item without vectors",
        ],
        "{}",
        after.stdout
    );
    // Without opsh_audit (the deployment's init.sql-only database) the record waits in the
    // audit file, and the pane reads it there.
    env.db.exec("DROP TABLE opsh_audit");
    let file = tempfile::tempdir().unwrap();
    let audit = file.path().join("audit.jsonl");
    let on = |o: Opsh| o.env("OPSH_AUDIT_FILE", &audit.display().to_string());
    let check = on(env.opsh()).args(["check-data"]).run();
    assert_eq!(check.code, 1, "{}{}", check.stdout, check.stderr);
    assert!(audit.exists(), "{}", check.stderr);
    let top = on(env.opsh()).args(["top", "--once"]).run();
    assert_eq!(top.code, 0, "{}", top.stderr);
    assert_eq!(
        vectors(&masked(&top.stdout))[2],
        "check-data Ns ago: 3 orphans, 2 missing, 1",
        "{}",
        top.stdout
    );
}

/// `opsh top` in a detached tmux session of its own (own server socket), 110×34.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(env: &[(String, String)]) -> Tmux {
        let socket = format!(
            "opsh-top-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut command = vec!["env".to_string(), "-i".into()];
        command.push(format!(
            "PATH={}",
            std::env::var("PATH").unwrap_or_default()
        ));
        command.push("TERM=xterm-256color".into());
        command.push("NO_COLOR=1".into());
        for (k, v) in env {
            command.push(format!("{k}={v}"));
        }
        command.extend([support::BIN.to_string(), "top".into()]);
        let status = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "110",
                "-y",
                "34",
            ])
            .args(&command)
            .status()
            .expect("tmux (tools/with-services installs it)");
        assert!(status.success(), "tmux new-session");
        let tmux = Tmux { socket };
        tmux.run(&["set-option", "-g", "remain-on-exit", "on"]);
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p"])
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys"];
        args.extend(keys);
        self.run(&args);
    }

    /// Waits (generously: a loaded machine) until the screen shows `text`.
    fn wait_for(&self, text: &str) -> String {
        let started = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "never showed {text:?}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the view has ended, and its exit status.
    fn exited(&self) -> Option<String> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            let dead = self.run(&[
                "display-message",
                "-p",
                "#{pane_dead} #{pane_pid} #{pane_dead_status}",
            ]);
            match dead.split_whitespace().collect::<Vec<_>>()[..] {
                ["1", _, status] => return Some(status.to_string()),
                // tmux 3.3a, several servers busy at once, now and then leaves the pane's
                // process a zombie it never reaps (seen by hand: `Z [opsh] <defunct>`), so no
                // status comes; the kernel still tells it (/proc/<pid>/stat, field 52).
                ["1", pid] => {
                    if let Some(status) = zombie_status(pid) {
                        return Some(status);
                    }
                }
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

/// The exit status of a process that has ended but not been reaped (a zombie), as waitpid
/// would give it; None while it runs.
fn zombie_status(pid: &str) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // rest[0] is field 3 (the state); field 52 is the exit code.
    if rest.first() != Some(&"Z") {
        return None;
    }
    let code: i32 = rest.get(49)?.parse().ok()?;
    // As waitpid's status: exited normally when the low 7 bits are 0, the code above them.
    (code & 0x7f == 0).then(|| ((code >> 8) & 0xff).to_string())
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

#[test]
fn keys_show_help_confirm_actions_and_q_restores_the_terminal() {
    let env = Env::new(13);
    let tmux = Tmux::start(&env.env());
    tmux.wait_for("│▶web");
    tmux.wait_for("stuck (processing > 1h): 2");
    // ? shows the help over the panes; any key closes it.
    tmux.keys(&["?"]);
    tmux.wait_for("safe-stop the stack (opsh safe-stop)");
    tmux.keys(&["x"]);
    tmux.wait_for("? help  q quit");
    // r asks first; n does nothing.
    tmux.keys(&["r"]);
    tmux.wait_for("Reset the jobs processing for more than 1h to pending?");
    tmux.keys(&["n"]);
    tmux.wait_for("cancelled: nothing done");
    let processing = "SELECT count(*) FROM processing_jobs WHERE status = 'processing'";
    assert_eq!(env.db.scalar(processing), "3");
    // y runs reset-stuck-jobs; the stuck job goes back to pending, the pane follows.
    tmux.keys(&["r"]);
    tmux.wait_for("Reset the jobs processing");
    tmux.keys(&["y"]);
    tmux.wait_for("opsh reset-stuck-jobs older_than=1h: exit 1: Reset stuck jobs; Status:");
    tmux.wait_for("stuck (processing > 1h): 0");
    // Job 1 back to pending, job 2 (retried 3 times) failed; job 3 (5 minutes) untouched.
    assert_eq!(env.db.scalar(processing), "1");
    // A narrower terminal keeps the layout.
    tmux.run(&["resize-window", "-x", "90", "-y", "30"]);
    let screen = tmux.wait_for("┌ containers ─");
    assert!(screen.contains("┌ job queue"), "{screen}");
    assert!(screen.lines().all(|l| l.chars().count() <= 90), "{screen}");
    // l follows the selected service's logs in a pane.
    tmux.keys(&["l"]);
    tmux.wait_for("logs of web (l closes)");
    tmux.keys(&["l"]);
    tmux.keys(&["q"]);
    let status = tmux.exited();
    assert_eq!(status.as_deref(), Some("0"), "{}", tmux.screen());
    // The alternate screen is left: the view is gone from the pane.
    let screen = tmux.screen();
    assert!(!screen.contains("job queue"), "{screen}");
}

#[test]
fn ctrl_c_quits_and_keys_answer_while_a_backend_hangs() {
    let env = Env::new(14);
    // A listener that accepts and never answers: Qdrant's reads hang until top.timeout.
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = hang.local_addr().unwrap();
    let mut vars = env.env();
    vars.retain(|(k, _)| k != "QDRANT_URL");
    vars.push(("QDRANT_URL".into(), format!("http://{addr}")));
    vars.push(("OPSH_TOP_TIMEOUT".into(), "20s".into()));
    let tmux = Tmux::start(&vars);
    tmux.wait_for("stuck (processing > 1h): 2");
    let screen = tmux.screen();
    assert!(
        screen.contains("reading…"),
        "the vectors pane waits:\n{screen}"
    );
    // Keys answer while Qdrant's reading waits for its timeout.
    tmux.keys(&["?"]);
    let started = Instant::now();
    tmux.wait_for("safe-stop the stack");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    tmux.keys(&["Escape"]);
    tmux.keys(&["C-c"]);
    assert_eq!(tmux.exited().as_deref(), Some("0"));
    drop(hang);
}

/// The newest "tick N" the logs pane shows, if any.
fn newest_tick(screen: &str) -> Option<u64> {
    let tick = Regex::new(r"│tick (\d+)").unwrap();
    screen
        .lines()
        .rev()
        .find_map(|l| tick.captures(l).and_then(|c| c[1].parse().ok()))
}

#[test]
fn l_follows_the_selected_services_logs_as_a_stream() {
    let env = Env::with_ticker(9);
    let mut vars = env.env();
    // The panes read once an hour: what moves on the screen is the log stream alone.
    vars.push(("OPSH_TOP_REFRESH".into(), "1h".into()));
    let tmux = Tmux::start(&vars);
    // ticker sorts first and is selected.
    tmux.wait_for("│▶ticker");
    tmux.keys(&["l"]);
    tmux.wait_for("logs of ticker (l closes): following");
    let first = loop {
        if let Some(n) = newest_tick(&tmux.screen()) {
            break n;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The lines come as the container writes them (one each 0.2 s), not in batches read again
    // at a refresh: the newest line seen moves many times while ten more are written.
    let mut seen = std::collections::BTreeSet::new();
    let started = Instant::now();
    loop {
        let screen = tmux.screen();
        if let Some(n) = newest_tick(&screen) {
            seen.insert(n);
            if n >= first + 10 {
                // Every line in order, none lost or repeated.
                let ticks: Vec<u64> = screen
                    .lines()
                    .filter_map(|l| l.strip_prefix("│tick "))
                    .filter_map(|l| l.split_whitespace().next()?.parse().ok())
                    .collect();
                let want: Vec<u64> = (ticks[0]..ticks[0] + ticks.len() as u64).collect();
                assert_eq!(ticks, want, "{screen}");
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the logs stopped at {seen:?}:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(seen.len() >= 4, "the newest line moved only {seen:?}");
    // A restart (which may end the engine's stream, or not): the pane says so and goes on
    // with the new process's lines (its count starts again at 1).
    docker(&["restart", "-t", "0", &format!("{}_ticker_1", env.project)]);
    let screen = tmux.wait_for("── ticker restarted");
    let after_restart = |screen: &str| {
        screen
            .lines()
            .skip_while(|l| !l.contains("── ticker restarted"))
            .any(|l| l.starts_with("│tick "))
    };
    if !after_restart(&screen) {
        let started = Instant::now();
        while !after_restart(&tmux.screen()) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{}",
                tmux.screen()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // Another selection follows that service instead; back on ticker, its removal is shown,
    // not waited on.
    tmux.keys(&["j"]);
    tmux.wait_for("logs of web (l closes): following");
    tmux.keys(&["k"]);
    tmux.wait_for("logs of ticker (l closes): following");
    docker(&["rm", "-f", &format!("{}_ticker_1", env.project)]);
    tmux.wait_for("── ticker is gone; following again if it comes back ──");
    tmux.wait_for("logs of ticker (l closes): ticker is gone");
    // l closes the pane; q quits.
    tmux.keys(&["l"]);
    let started = Instant::now();
    while tmux.screen().contains("logs of ticker") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    tmux.keys(&["q"]);
    assert_eq!(tmux.exited().as_deref(), Some("0"), "{}", tmux.screen());
}
