//! What the REPL does on a keystroke, timed in-process: completion (Tab), the hint and the
//! highlighting (every key), and the multi-line check (Enter). Each case is timed once cold
//! (a live name's first use fetches it from the deployment) and then over many calls; the
//! number of fetches must not grow after the first: no network call per keystroke.
//!
//!     benches/repl.sh                 # with PostgreSQL from tools/with-services, plus the prompt time
//!     cargo bench --bench repl_complete -- [calls]
//!
//! Without a reachable PostgreSQL (DATABASE_URL) the live cases complete nothing, still without
//! a second fetch.

use std::time::{Duration, Instant};

use opsh::bridge::Bridge;
use opsh::config::{Overrides, Settings};
use opsh::host::Host;
use opsh::ops::{Flags, Target};
use opsh::repl::helper::OpshHelper;
use opsh::repl::live::Live;

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a quick smoke test.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let calls: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(
        if args.iter().any(|a| a == "--bench") {
            1000
        } else {
            10
        },
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let settings = Settings::load(&Overrides::default()).expect("settings");
    let bridge = Bridge::new(runtime.handle().clone());
    let host = Host::new(Target::new(settings, bridge, Flags::default()), false);
    let mut helper = OpshHelper::new(
        host.specs(),
        opsh::repl::procedures(&host),
        Live::new(Some(host.target())),
        true,
    );
    helper.vars = vec!["jobs_before".into(), "report".into(), "limit".into()];

    type Case<'a> = (&'a str, &'a str, fn(&OpshHelper, &str) -> usize);
    let complete: fn(&OpshHelper, &str) -> usize = |h, l| h.candidates(l, l.len()).1.len();
    let cases: &[Case] = &[
        ("complete a module's functions", "jobs::re", complete),
        ("complete an option name", "jobs::list(#{ol", complete),
        ("complete a name (modules, globals, vars)", "j", complete),
        ("complete a procedure after :run", ":run reset-st", complete),
        (
            "complete a job type (live, db)",
            "jobs::list(#{job_type: \"tr",
            complete,
        ),
        (
            "complete a table in SQL (live, db)",
            "db::query(\"SELECT * FROM proc",
            complete,
        ),
        (
            "hint: signature of the call",
            "jobs::reset_stuck(#{older_than: \"2h\", ",
            |h, l| h.hint_text(l, l.len()).map_or(0, |t| t.len()),
        ),
        (
            "highlight a line",
            "let r = jobs::reset_stuck(#{older_than: \"2h\", max_retries: 3}); r.ids",
            |_, l| opsh::repl::helper::highlight(l).len(),
        ),
        (
            "Enter: is the entry complete?",
            "fn tri(n) {\n  if n == 0 { 0 } else { n + tri(n - 1) }\n}",
            |h, l| usize::from(h.is_incomplete(l)),
        ),
    ];

    println!(
        "REPL keystroke work, {calls} calls after the first, {} cores\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| what | first call | median | p99 | max | candidates |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut worst = Duration::ZERO;
    for (name, line, f) in cases {
        let started = Instant::now();
        let n = f(&helper, line);
        let first = started.elapsed();
        let fetches = helper.live.fetches();
        let mut samples: Vec<Duration> = (0..calls)
            .map(|_| {
                let started = Instant::now();
                std::hint::black_box(f(&helper, std::hint::black_box(line)));
                started.elapsed()
            })
            .collect();
        assert_eq!(
            helper.live.fetches(),
            fetches,
            "{name}: a keystroke after the first fetched again"
        );
        samples.sort();
        let pct = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
        worst = worst.max(pct(0.99));
        println!(
            "| {name} | {} | {} | {} | {} | {n} |",
            ms(first),
            ms(pct(0.5)),
            ms(pct(0.99)),
            ms(samples[samples.len() - 1]),
        );
    }
    println!(
        "\nlive fetches in all: {} (one per kind of name); worst p99 after the first call: {}",
        helper.live.fetches(),
        ms(worst)
    );
    let _context = runtime.enter();
    drop(host);
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}
