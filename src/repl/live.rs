//! Live names for completion: tables, job types, … read from the deployment the first time a
//! completion needs them and kept for the session (`:reload` forgets them). A keystroke never
//! makes a network call after the first fetch of a kind.
//!
//! # Adding a source (the hook for later domains)
//!
//! A domain adds one [`Source`] to [`SOURCES`]: the parameter and option names it fills (any
//! function whose spec has a parameter or option of that name gets the names offered inside its
//! string literal) and a `fetch` that returns the names. Fetches run on the bridge, bounded by
//! [`FETCH_TIMEOUT`]; a failure caches an empty list (completion must never stall the prompt
//! twice). For example the Qdrant and compose domains would add:
//!
//! ```ignore
//! Source { kind: "collections", names: &["collection"], fetch: |t| block(t, qdrant::collections(t)) },
//! Source { kind: "services", names: &["service"], fetch: |t| block(t, compose::services(t)) },
//! ```

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use crate::ops::Target;
use crate::ops::error::OpError;

/// How long one fetch may take before completion gives up on that kind for the session.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// Where one kind of live name comes from.
pub struct Source {
    /// What the names are, for messages and the cache key: "tables".
    pub kind: &'static str,
    /// The parameter and option names whose string values are such names.
    pub names: &'static [&'static str],
    pub fetch: fn(&Target) -> Result<Vec<String>, String>,
}

/// Every live source. Later domains add theirs here (see the module documentation).
pub static SOURCES: &[Source] = &[
    Source {
        kind: "tables",
        names: &["table"],
        fetch: |t| {
            block(t, crate::ops::db::tables(t, false))
                .map(|tables| tables.into_iter().map(|table| table.name).collect())
        },
    },
    Source {
        kind: "job types",
        names: &["job_type"],
        fetch: |t| {
            let sql = "SELECT DISTINCT job_type FROM processing_jobs ORDER BY 1 LIMIT 1000";
            block(t, crate::ops::db::query(t, sql, Vec::new())).map(|rows| {
                rows.iter()
                    .filter_map(|row| row.get("job_type").map(|v| v.to_string()))
                    .collect()
            })
        },
    },
    Source {
        kind: "job statuses",
        names: &["status"],
        fetch: |_| {
            Ok(["pending", "processing", "completed", "failed"]
                .map(String::from)
                .to_vec())
        },
    },
];

/// Runs a fetch on the bridge as a short run of its own, bounded by [`FETCH_TIMEOUT`].
pub fn block<T>(
    target: &Target,
    fut: impl Future<Output = Result<T, OpError>>,
) -> Result<T, String> {
    let _run = target.bridge.begin_run(Some(FETCH_TIMEOUT));
    match target.bridge.block_on(fut) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(e.to_string()),
        Err(stop) => Err(stop.to_string()),
    }
}

/// The source filling a parameter or option of this name.
pub fn source_for(name: &str) -> Option<&'static Source> {
    SOURCES.iter().find(|s| s.names.contains(&name))
}

/// The session's cache of live names.
pub struct Live {
    target: Option<Rc<Target>>,
    cache: RefCell<HashMap<&'static str, Rc<[String]>>>,
    fetches: Cell<usize>,
}

impl Live {
    /// Without a target nothing is fetched (unit tests, benchmarks of the static parts).
    pub fn new(target: Option<Rc<Target>>) -> Live {
        Live {
            target,
            cache: RefCell::default(),
            fetches: Cell::new(0),
        }
    }

    /// The names of a source: fetched on the first call, cached after.
    pub fn names(&self, source: &'static Source) -> Rc<[String]> {
        if let Some(names) = self.cache.borrow().get(source.kind) {
            return names.clone();
        }
        let names: Rc<[String]> = match &self.target {
            Some(target) => {
                self.fetches.set(self.fetches.get() + 1);
                match (source.fetch)(target) {
                    Ok(names) => names.into(),
                    Err(why) => {
                        tracing::debug!("completion: cannot list {}: {why}", source.kind);
                        Rc::from(Vec::new())
                    }
                }
            }
            None => Rc::from(Vec::new()),
        };
        self.cache.borrow_mut().insert(source.kind, names.clone());
        names
    }

    /// How many fetches were made (the benchmark checks keystrokes make none).
    pub fn fetches(&self) -> usize {
        self.fetches.get()
    }

    /// Fills the cache as a fetch would (tests).
    pub fn preset(&self, kind: &'static str, names: &[&str]) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        self.cache.borrow_mut().insert(kind, names.into());
    }

    pub fn clear(&self) {
        self.cache.borrow_mut().clear();
    }
}
