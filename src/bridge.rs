//! The async bridge: the engine runs on the main thread, host functions block on futures run by
//! the tokio runtime, raced against cancellation (Ctrl-C, --timeout).
//!
//! It sits beside host and ops rather than inside either, because both use it: the host creates
//! and trips it, every ops function blocks on it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

/// Why a run was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Interrupt,
    Timeout,
    /// Stdout can take no more output (its reader went away): the run ends at its next step,
    /// unwinding to the runner, which releases what it holds before opsh exits.
    Output,
}

/// The one place a stop reason becomes text: the engine's termination token and messages.
impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stop::Interrupt => "interrupted",
            Stop::Timeout => "timeout",
            Stop::Output => "stdout closed",
        })
    }
}

/// The cancellation state shared by the signal handler, the timer and the engine.
#[derive(Default)]
struct CancelState {
    token: Mutex<CancellationToken>,
    /// 0 none, 1 interrupt, 2 timeout, 3 output.
    reason: AtomicU8,
    /// An interactive child (psql) has the terminal: Ctrl-C is its to handle.
    child_in_foreground: AtomicBool,
    /// What stops a backend's work once its call is abandoned (see [`Bridge::on_cancel`]).
    cancel_hooks: Mutex<Vec<CancelHook>>,
}

/// Stops whatever a backend still does for an abandoned call; see [`Bridge::on_cancel`].
pub type CancelHook =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync + 'static>;

/// How long the cancel hooks may take together: a backend that does not answer must not hold
/// up the prompt or the exit that Ctrl-C asked for.
const CANCEL_HOOKS_WAIT: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub struct Bridge {
    handle: Handle,
    state: Arc<CancelState>,
}

impl Bridge {
    pub fn new(handle: Handle) -> Bridge {
        Bridge {
            handle,
            state: Arc::default(),
        }
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    fn token(&self) -> CancellationToken {
        self.state
            .token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Starts a fresh run: clears an earlier cancellation (the REPL runs many) and arms the
    /// timeout. Dropping the returned guard disarms the timer.
    pub fn begin_run(&self, timeout: Option<Duration>) -> RunGuard {
        *self.state.token.lock().unwrap_or_else(|e| e.into_inner()) = CancellationToken::new();
        self.state.reason.store(0, Ordering::SeqCst);
        let timer = timeout.map(|t| {
            let bridge = self.clone();
            self.handle.spawn(async move {
                tokio::time::sleep(t).await;
                bridge.cancel(Stop::Timeout);
            })
        });
        RunGuard { timer }
    }

    /// Cancels the running script. Returns false when it was already cancelled.
    pub fn cancel(&self, why: Stop) -> bool {
        let code = match why {
            Stop::Interrupt => 1,
            Stop::Timeout => 2,
            Stop::Output => 3,
        };
        let first = self
            .state
            .reason
            .compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        self.token().cancel();
        first
    }

    /// Why the current run was cancelled, if it was. Cheap: the engine asks on every operation.
    pub fn stopped(&self) -> Option<Stop> {
        match self.state.reason.load(Ordering::Relaxed) {
            0 => None,
            1 => Some(Stop::Interrupt),
            2 => Some(Stop::Timeout),
            _ => Some(Stop::Output),
        }
    }

    /// Runs a future to completion on the runtime, unless the run is cancelled first.
    /// Must be called from the engine's thread, never from a runtime worker.
    pub fn block_on<T>(&self, fut: impl Future<Output = T>) -> Result<T, Stop> {
        if let Some(stop) = self.stopped() {
            return Err(stop);
        }
        let token = self.token();
        let outcome = self.handle.block_on(async {
            tokio::select! {
                biased;
                _ = token.cancelled() => None,
                value = fut => Some(value),
            }
        });
        match outcome {
            Some(value) => Ok(value),
            None => {
                // Dropping the future ends opsh's side only: a PostgreSQL backend goes on
                // running the statement (pg_sleep, a long scan) until it ends on its own.
                self.run_cancel_hooks();
                Err(self.stopped().unwrap_or(Stop::Interrupt))
            }
        }
    }

    /// Registers what stops a backend's server-side work when a call is abandoned (Ctrl-C,
    /// --timeout). Hooks run on the runtime after the call's future is dropped, together and
    /// bounded by a few seconds; they must be harmless when nothing is running.
    pub fn on_cancel(&self, hook: CancelHook) {
        self.state
            .cancel_hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(hook);
    }

    fn run_cancel_hooks(&self) {
        let pending: Vec<_> = self
            .state
            .cancel_hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|hook| hook())
            .collect();
        if pending.is_empty() {
            return;
        }
        let all = futures_util::future::join_all(pending);
        if self
            .handle
            .block_on(async { tokio::time::timeout(CANCEL_HOOKS_WAIT, all).await })
            .is_err()
        {
            tracing::warn!(
                "the backends did not confirm the cancel within {}",
                crate::duration::format(CANCEL_HOOKS_WAIT)
            );
        }
    }

    /// Sleeps, waking early when the run is cancelled.
    pub fn sleep(&self, d: Duration) -> Result<(), Stop> {
        // The timer must be made inside the runtime, hence the async block.
        self.block_on(async move { tokio::time::sleep(d).await })
    }

    /// Installs the Ctrl-C handler: the first press cancels the running script, a second one
    /// (when the script does not end) exits at once.
    pub fn install_ctrl_c(&self) {
        let bridge = self.clone();
        self.handle.spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                if bridge.state.child_in_foreground.load(Ordering::SeqCst) {
                    continue;
                }
                if !bridge.cancel(Stop::Interrupt) {
                    eprintln!("opsh: interrupted twice, exiting");
                    std::process::exit(crate::error::code::INTERRUPTED.into());
                }
            }
        });
    }
}

impl Bridge {
    /// Runs an interactive child process (e.g. psql) that owns the terminal: a Ctrl-C pressed
    /// meanwhile is the child's (psql cancels its query) and does not end the script.
    pub fn foreground<T>(&self, run: impl FnOnce() -> T) -> T {
        self.state.child_in_foreground.store(true, Ordering::SeqCst);
        let result = run();
        self.state
            .child_in_foreground
            .store(false, Ordering::SeqCst);
        result
    }
}

/// Disarms the run's timeout timer when dropped.
pub struct RunGuard {
    timer: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if let Some(timer) = self.timer.take() {
            timer.abort();
        }
    }
}
