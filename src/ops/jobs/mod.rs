//! `jobs::` — the processing_jobs queue: counts, listing, stuck jobs and their reset, waiting
//! for the workers to go idle, retrying failed jobs.
//!
//! Every write is one set-based UPDATE whose WHERE clause is the whole predicate: under READ
//! COMMITTED PostgreSQL re-checks it on the newest row version after waiting for a concurrent
//! writer, so a job that finished meanwhile, or that another reset already took, is left alone.
//!
//! Where things are: [`sql`] (the SQL as this database has it), [`read`] (counts, list, stuck),
//! [`reset`] (reset_stuck, reset_processing), [`idle`] (wait_idle), [`retry`] (retry_failed),
//! [`specs`]; this file registers them.

mod idle;
mod read;
mod reset;
mod retry;
mod specs;
mod sql;

pub use idle::*;
pub use read::*;
pub use reset::*;
pub use retry::*;
use specs::*;
pub use sql::{LAST_ACTIVITY, STATUSES, last_activity};

use std::time::Duration;

use crate::ops::error::OpError;
use crate::ops::spec::Registrar;
use crate::text::count;

pub fn register(reg: &mut Registrar) {
    reg.add(&COUNTS, |c| c.block(counts(c.target)));
    reg.add(&LIST, |c| {
        let filter = Filter {
            status: c.opt_str("status")?,
            job_types: c.opt_strings("job_type")?,
            older_than: c.opt_duration("older_than")?,
            limit: c.int("limit")?,
        };
        c.block(list(c.target, &filter))
    });
    reg.add(&STUCK, |c| {
        let (older_than, job_types) = (c.duration("older_than")?, c.opt_strings("job_type")?);
        c.block(stuck(c.target, older_than, job_types, c.int("limit")?))
    });
    reg.add(&RESET_STUCK, |c| {
        let older_than = c.duration("older_than")?;
        let max_retries = c.int("max_retries")?;
        if max_retries < 0 {
            return Err(OpError::invalid(format!(
                "option `max_retries`: {max_retries} is negative"
            ))
            .into());
        }
        let req = ResetStuck {
            older_than,
            max_retries,
            reason: c.opt_str("reason")?.unwrap_or_else(|| {
                format!(
                    "reset by opsh: processing for more than {}",
                    crate::text::duration(older_than)
                )
            }),
            job_types: c.opt_strings("job_type")?,
        };
        let result = c.block(reset_stuck(c.target, &req))?;
        if !result.dry_run {
            tracing::info!(
                "reset {} to pending, {} to failed",
                count(result.reset, "stuck job", None),
                result.failed
            );
        }
        Ok(result)
    });
    reg.add(&RESET_PROCESSING, |c| {
        let (reason, job_types) = (c.str("reason")?, c.opt_strings("job_type")?);
        c.block(reset_processing(c.target, &reason, job_types))
    });
    reg.add(&WAIT_IDLE, |c| {
        let timeout = c.duration("timeout")?;
        let poll = c.duration("poll")?.max(Duration::from_millis(10));
        c.block(wait_idle(
            c.target,
            timeout,
            poll,
            c.opt_strings("job_type")?,
        ))
    });
    reg.add(&RETRY_FAILED, |c| {
        let filter = Filter {
            status: None,
            job_types: c.opt_strings("job_type")?,
            older_than: c.opt_duration("older_than")?,
            limit: c.int("limit")?,
        };
        c.block(retry_failed(c.target, &filter))
    });
    reg.add(&STUCK_AFTER_SPEC, |c| {
        Ok(stuck_after(c.target, &c.str("procedure")?)?)
    });
}
