//! Writing to stdout and stderr, below the host (which writes a script's `print` through it).
//!
//! Everything opsh prints goes through [`out`] (or [`out_styled`]): a closed stdout (`opsh
//! scripts | head -1`) ends opsh quietly, as SIGPIPE ends other tools, instead of panicking in
//! println!. It ends it by unwinding, not by exiting where the write failed: the failure is
//! noted ([`failed`]), later writes are dropped, a running script is stopped at its next step
//! (the host's print callback cancels the run), and cli::main exits with [`failed`]'s status
//! once the runner has released the run lock and every guard has cleaned up.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::code;

/// Writes to stdout, secrets masked (crate::redact).
pub fn out(text: &str) {
    if failed().is_some() {
        return;
    }
    let text = &crate::redact::text(text);
    let mut stdout = std::io::stdout().lock();
    written(
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush()),
    );
}

/// Writes to stdout, dropping colour and styles when stdout is not a terminal (or NO_COLOR).
pub fn out_styled(text: &str) {
    if failed().is_some() {
        return;
    }
    let text = &crate::redact::text(text);
    let mut stdout = anstream::stdout();
    written(
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush()),
    );
}

/// Writes a line to stderr, secrets masked; a closed stderr is no reason to fail.
pub fn err(text: &str) {
    let text = &crate::redact::text(text);
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
}

/// The exit status stdout's failure decides (0: none yet).
static FAILED: AtomicU8 = AtomicU8::new(0);

/// The exit status a failed write to stdout decided: [`CLOSED_STDOUT`] when its reader went
/// away, 3 (unknown) for any other failure; None while stdout takes output.
pub fn failed() -> Option<u8> {
    match FAILED.load(Ordering::SeqCst) {
        0 => None,
        status => Some(status),
    }
}

/// The end of a write to stdout. When the reader has gone (`| head`), nobody will read the
/// rest: note it, so that opsh stops quietly with the status a SIGPIPE death shows in a shell
/// (141). Any other failure (a full disk) is said once.
fn written(result: std::io::Result<()>) {
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            let _ = FAILED.compare_exchange(0, CLOSED_STDOUT, Ordering::SeqCst, Ordering::SeqCst);
        }
        Err(e) => {
            if FAILED
                .compare_exchange(0, code::UNKNOWN, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                err(&format!("opsh: error: cannot write to stdout: {e}\n"));
            }
        }
    }
}

/// The exit status when stdout was closed by its reader: 128 + SIGPIPE, as a shell reports a
/// process that SIGPIPE ended.
pub const CLOSED_STDOUT: u8 = 141;
