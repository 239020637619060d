//! What the keys start: a bundled procedure run as `opsh <procedure> --yes` in a child process
//! (confirmed in the view first), so its checks, --dry-run handling and audit record are the
//! command line's own; and the selected service's logs, read again every refresh.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::runtime::Handle;

use super::app::{Action, App};
use crate::bridge::Bridge;
use crate::config::{Settings, key};
use crate::ops::docker::LogRequest;
use crate::ops::{Flags, Target};

enum Done {
    Action(String),
    Logs(String, Result<Vec<String>, String>),
}

pub struct Runner {
    settings: Settings,
    handle: Handle,
    config: Option<std::path::PathBuf>,
    tx: Sender<Done>,
    rx: Mutex<Receiver<Done>>,
    /// Bumped whenever the followed service changes: an older follower stops.
    generation: Arc<AtomicU64>,
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
            generation: Arc::default(),
        }
    }

    /// Takes what finished into the view; true when something changed.
    pub fn poll(&self, app: &mut App) -> bool {
        let Ok(rx) = self.rx.lock() else {
            return false;
        };
        let mut changed = false;
        while let Ok(done) = rx.try_recv() {
            match done {
                Done::Action(message) => app.message = Some(message),
                Done::Logs(service, lines) => {
                    if app.logs.as_ref().is_some_and(|(s, _)| *s == service) {
                        app.logs = Some((service, lines));
                    }
                }
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

    /// Follows a service's logs (its last lines, read every refresh), or stops following.
    pub fn follow(&self, service: Option<String>) {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let Some(service) = service else {
            return;
        };
        let (settings, handle, tx, current) = (
            self.settings.clone(),
            self.handle.clone(),
            self.tx.clone(),
            self.generation.clone(),
        );
        std::thread::spawn(move || {
            let _entered = handle.enter();
            let refresh = settings.duration(key::TOP_REFRESH);
            let timeout = settings.duration(key::TOP_TIMEOUT);
            let target = Target::new(settings, Bridge::new(handle.clone()), Flags::default());
            let services = [service.clone()];
            let req = LogRequest {
                tail: Some(200),
                since: None,
                grep: None,
                follow: false,
            };
            while current.load(Ordering::SeqCst) == generation {
                let read = handle.block_on(tokio::time::timeout(
                    timeout,
                    crate::ops::docker::logs(&target, Some(&services), &req),
                ));
                let lines = match read {
                    Ok(Ok(logs)) => Ok(logs
                        .lines
                        .into_iter()
                        .map(|l| crate::redact::text(&l.text))
                        .collect()),
                    Ok(Err(e)) => Err(crate::redact::text(&e.to_string())),
                    Err(_) => Err(format!(
                        "no answer within {}",
                        crate::duration::format(timeout)
                    )),
                };
                if tx.send(Done::Logs(service.clone(), lines)).is_err() {
                    break;
                }
                std::thread::sleep(refresh.min(Duration::from_secs(2)));
            }
        });
    }
}
