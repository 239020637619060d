//! The one path every destructive operation takes: --dry-run reports and changes nothing, a
//! confirmation is asked on the terminal (or given by --yes, or refused without a terminal), and
//! what was done is handed to the audit hook.

use std::io::{BufRead, IsTerminal, Write};

use crate::ops::Target;
pub use crate::ops::change::{Change, Confirm};
use crate::ops::error::OpError;

/// Whether the change goes ahead: `Ok(false)` under --dry-run (the caller reports its plan),
/// `Ok(true)` once confirmed, `Err` (kind `declined`) when it is not.
pub fn proceed(target: &Target, change: &Change) -> Result<bool, OpError> {
    if target.flags.dry_run {
        target
            .audit
            .record(target, change, true, "dry run: nothing changed");
        return Ok(false);
    }
    if change.count == 0 || target.audit.covered.get() {
        return Ok(true);
    }
    let expected = match change.confirm {
        Confirm::Never => return Ok(true),
        Confirm::Yes => "yes",
        Confirm::Phrase(p) => p,
    };
    ask(
        target,
        &format!("{}: {}?", change.op, change.summary),
        expected,
    )?;
    Ok(true)
}

/// Records a change that was made (called by the operation after it succeeded).
pub fn done(target: &Target, change: &Change, outcome: &str) {
    target.audit.record(target, change, false, outcome);
}

/// Asks the operator to type `expected`; --yes answers for them; without a terminal it refuses
/// with what to do instead.
pub fn ask(target: &Target, prompt: &str, expected: &str) -> Result<(), OpError> {
    if target.flags.yes {
        tracing::info!("{prompt} (confirmed by --yes)");
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(OpError::declined(format!(
            "`{prompt}` needs confirmation and there is no terminal to ask on; pass --yes to confirm unattended, or --dry-run to see what it would change"
        )));
    }
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "{prompt}\nType `{expected}` to continue: ");
    let _ = stderr.flush();
    let mut answer = String::new();
    // Reading a line blocks Ctrl-C's cancellation; the second press still exits.
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| OpError::invalid(format!("cannot read the answer: {e}")))?;
    if answer.trim() == expected {
        Ok(())
    } else {
        Err(OpError::declined(format!(
            "not confirmed: the answer was not `{expected}`"
        )))
    }
}

pub use crate::ops::audit::{Audit, Record};
