//! What the keys start: a bundled procedure run as `opsh <procedure> --yes` in a child process
//! (confirmed in the view first), so its checks, --dry-run handling and audit record are the
//! command line's own; and the selected service's logs, followed as a stream.

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use tokio::runtime::Handle;

use super::app::{Action, App};
use crate::bridge::Bridge;
use crate::config::{Settings, key};
use crate::ops::{Flags, Target};

enum Done {
    Action(String),
    /// New lines of the logs followed under this generation.
    LogLines(u64, Vec<String>),
    /// What that stream is doing, or why it cannot be read.
    LogState(u64, Result<String, String>),
}

pub struct Runner {
    settings: Settings,
    handle: Handle,
    config: Option<std::path::PathBuf>,
    tx: Sender<Done>,
    rx: Mutex<Receiver<Done>>,
    /// Bumped whenever the followed service changes: an older follower stops.
    generation: tokio::sync::watch::Sender<u64>,
}

impl Runner {
    pub fn new(settings: &Settings, handle: &Handle, config: Option<std::path::PathBuf>) -> Runner {
        let (tx, rx) = channel();
        Runner {
            settings: settings.clone(),
            handle: handle.clone(),
            config,
            tx,
            rx: Mutex::new(rx),
            generation: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Takes what finished into the view; true when something changed.
    pub fn poll(&self, app: &mut App) -> bool {
        let Ok(rx) = self.rx.lock() else {
            return false;
        };
        let mut changed = false;
        // What is there now, not what keeps arriving: the view must draw and read keys.
        for done in rx.try_iter().take(1000) {
            match done {
                Done::Action(message) => app.message = Some(message),
                // A stream stopped meanwhile may have sent a last batch: not shown.
                Done::LogLines(g, lines) if g == *self.generation.borrow() => {
                    if let Some(logs) = &mut app.logs {
                        logs.push(lines);
                    }
                }
                Done::LogState(g, state) if g == *self.generation.borrow() => {
                    if let Some(logs) = &mut app.logs {
                        logs.state = state;
                    }
                }
                Done::LogLines(..) | Done::LogState(..) => continue,
            }
            changed = true;
        }
        changed
    }

    /// Runs a confirmed action's procedure off the view's thread.
    pub fn run(&self, action: Action) {
        let mut cmd = match std::env::current_exe() {
            Ok(exe) => Command::new(exe),
            Err(e) => {
                let _ = self
                    .tx
                    .send(Done::Action(format!("cannot find opsh itself: {e}")));
                return;
            }
        };
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        if let Some(target) = self.settings.target_name() {
            cmd.args(["--target", target]);
        }
        let words = action.command();
        cmd.arg("--yes")
            .args(&words)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            let shown = words.join(" ");
            let message = match cmd.output() {
                Ok(out) => {
                    let text = String::from_utf8_lossy(&out.stdout);
                    let err = String::from_utf8_lossy(&out.stderr);
                    // A report's first line is its title, its last its overall status.
                    let mut lines = text.lines().chain(err.lines()).map(str::trim);
                    let first = lines.find(|l| !l.is_empty()).unwrap_or("").to_string();
                    let first = match text.lines().rev().find(|l| l.starts_with("Status:")) {
                        Some(status) if status != first => format!("{first}; {status}"),
                        _ => first,
                    };
                    let status = out
                        .status
                        .code()
                        .map_or("killed".to_string(), |c| format!("exit {c}"));
                    format!("opsh {shown}: {status}: {first}")
                }
                Err(e) => format!("opsh {shown}: cannot start: {e}"),
            };
            let _ = tx.send(Done::Action(crate::redact::text(&message)));
        });
    }

    /// Follows a service's logs as a stream, or stops following (None). Whatever was followed
    /// before stops: its stream is dropped as soon as the generation moves on.
    pub fn follow(&self, service: Option<String>) {
        self.generation.send_modify(|g| *g += 1);
        let generation = *self.generation.borrow();
        let Some(service) = service else {
            return;
        };
        let (settings, handle, tx) = (self.settings.clone(), self.handle.clone(), self.tx.clone());
        let mut current = self.generation.subscribe();
        std::thread::spawn(move || {
            let _entered = handle.enter();
            let target = Target::new(settings, Bridge::new(handle.clone()), Flags::default());
            // Ends when another service is followed, the pane closes or the view is gone
            // (the sender dropped).
            let stopped = async move {
                while *current.borrow_and_update() == generation {
                    if current.changed().await.is_err() {
                        break;
                    }
                }
            };
            handle.block_on(async {
                tokio::select! {
                    () = follow_logs(&target, &service, generation, &tx) => {}
                    () = stopped => {}
                }
            });
        });
    }
}

/// While a stream runs: the engine may carry it on across a restart (Docker 20.10 does), so the
/// container's start time is looked at every `wait` and a restart marked in the lines; a
/// container that pauses or is being removed is marked too. Ends only when marking fails (the
/// view is gone).
async fn watch_restarts(
    target: &Target,
    services: &[String],
    wait: Duration,
    mark: &impl Fn(String) -> bool,
) {
    let service = &services[0];
    // Each container's start, in seconds since the epoch (now − uptime), and its state.
    let mut known: Option<Vec<(String, i64, String)>> = None;
    // The first look at once: a restart soon after the stream began is seen too.
    let mut pause = Duration::ZERO;
    loop {
        tokio::time::sleep(pause).await;
        pause = wait;
        let Ok(Ok(list)) = tokio::time::timeout(
            target.settings.duration(key::TOP_TIMEOUT),
            crate::ops::docker::ps(target, Some(services)),
        )
        .await
        else {
            continue;
        };
        let now = chrono::Utc::now().timestamp();
        let seen: Vec<(String, i64, String)> = list
            .iter()
            .map(|c| {
                (
                    c.id.clone(),
                    c.uptime_seconds.map_or(0, |up| now - up),
                    c.state.clone(),
                )
            })
            .collect();
        if let Some(before) = &known {
            for (id, start, state) in &seen {
                let Some((_, was, was_state)) = before.iter().find(|(i, ..)| i == id) else {
                    continue;
                };
                // Uptimes are whole seconds: a start that moves by more than that is a restart,
                // as is running again after anything but a pause.
                let moved = *start > 0 && *was > 0 && (start - was).abs() > 2;
                let said = if state == was_state && !(state == "running" && moved) {
                    true
                } else if state != "running" {
                    mark(format!("{service} {state}"))
                } else if was_state == "paused" {
                    mark(format!("{service} unpaused"))
                } else {
                    mark(format!("{service} restarted"))
                };
                if !said {
                    return;
                }
            }
        }
        known = Some(seen);
    }
}

/// The last lines a followed service shows first.
const TAIL: i64 = 200;

/// Follows `service`'s logs until the caller drops this future: the stream's lines as they come;
/// when it ends (the container stopped, restarted or was removed) a line that says so, then
/// following again once the container runs, from after the last line seen.
async fn follow_logs(target: &Target, service: &str, generation: u64, tx: &Sender<Done>) {
    let timeout = target.settings.duration(key::TOP_TIMEOUT);
    let wait = target
        .settings
        .duration(key::TOP_REFRESH)
        .min(Duration::from_secs(2));
    let services = [service.to_string()];
    let mut after: Option<String> = None;
    let state = |s: Result<String, String>| tx.send(Done::LogState(generation, s)).is_ok();
    let mark = |text: String| {
        tx.send(Done::LogLines(generation, vec![format!("── {text} ──")]))
            .is_ok()
    };
    loop {
        if !state(Ok("following".into())) {
            return;
        }
        let mut last = after.clone();
        let started = std::time::Instant::now();
        let mut each = |lines: Vec<crate::ops::docker::LogLine>| {
            if let Some(l) = lines.last() {
                last = Some(l.time.clone());
            }
            let text = lines
                .into_iter()
                .map(|l| crate::redact::text(&l.text))
                .collect();
            let _ = tx.send(Done::LogLines(generation, text));
        };
        let follow =
            crate::ops::docker::follow_service(target, service, TAIL, after.as_deref(), &mut each);
        let followed = tokio::select! {
            followed = follow => followed,
            () = watch_restarts(target, &services, wait, &mark) => Ok(()),
        };
        after = last;
        if let Err(e) = followed {
            let why = crate::redact::text(&e.to_string());
            if !state(Err(why)) {
                return;
            }
        }
        // The stream ended: say what became of the container, and wait until it runs again.
        let mut said = String::new();
        loop {
            let ps = tokio::time::timeout(timeout, crate::ops::docker::ps(target, Some(&services)))
                .await;
            let (running, now) = match ps {
                Ok(Ok(list)) if list.iter().any(|c| c.state == "running") => {
                    // Started after the stream began (or seen stopped meanwhile): restarted.
                    let restarted = !said.is_empty()
                        || list.iter().any(|c| {
                            c.uptime_seconds
                                .is_some_and(|up| up <= started.elapsed().as_secs() as i64)
                        });
                    let now = if restarted {
                        format!("{service} restarted; following again")
                    } else {
                        format!("{service}'s log stream ended; following again")
                    };
                    (true, now)
                }
                Ok(Ok(list)) => (
                    false,
                    match list.first() {
                        Some(c) => format!(
                            "{service} {} ({}); following again when it runs",
                            c.state, c.status
                        ),
                        None => format!("{service} is gone; following again if it comes back"),
                    },
                ),
                Ok(Err(e)) if e.kind == crate::ops::error::ErrorKind::NotFound => (
                    false,
                    format!("{service} is gone; following again if it comes back"),
                ),
                Ok(Err(e)) => (false, crate::redact::text(&e.to_string())),
                Err(_) => (
                    false,
                    format!(
                        "docker: no answer within {} (top.timeout)",
                        crate::duration::format(timeout)
                    ),
                ),
            };
            // One line per change of state, not one per poll.
            if now != said {
                if !mark(now.clone()) {
                    return;
                }
                let shown = if running {
                    Ok(now.clone())
                } else {
                    Err(now.clone())
                };
                if !state(shown) {
                    return;
                }
                said = now;
            }
            if running {
                // Never a tight loop of streams that end at once.
                let min = Duration::from_secs(1).saturating_sub(started.elapsed());
                tokio::time::sleep(min).await;
                break;
            }
            tokio::time::sleep(wait).await;
        }
    }
}
