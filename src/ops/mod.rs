//! The typed operations, a domain per file, or per folder once it holds several concepts
//! (backup/, docker/, integrity/, qdrant/: one concept a file, mod.rs registers them). Each
//! domain has a plain async Rust API whose results
//! derive Serialize, and one `register` that exposes it to Rhai through its function specs.

pub mod audit;
pub mod backup;
pub mod budget;
pub mod cache;
pub mod change;
pub mod clients;
pub mod compose;
pub mod db;
pub mod destructive;
pub mod docker;
pub mod error;
pub mod files;
pub mod gpu;
pub mod host;
pub mod integrity;
pub mod jobs;
pub mod models;
pub mod progress;
pub mod purge;
pub mod qdrant;
pub mod reset;
pub mod runlock;
pub mod spec;
pub mod stt;
mod target;

pub use target::{Flags, Target};

use std::rc::Rc;

use spec::{Registrar, Spec};

/// A domain's module name and its registration.
type Domain = (&'static str, fn(&mut Registrar));

/// Registers every domain's module (`db::`, `jobs::`, …) into the engine and returns the specs
/// of what it registered.
pub fn register_all(
    engine: &mut rhai::Engine,
    target: &Rc<Target>,
    specs: &mut Vec<&'static Spec>,
) {
    error::register(engine);
    let domains: &[Domain] = &[
        ("backup", backup::register),
        ("cache", cache::register),
        ("compose", compose::register),
        ("db", db::register),
        ("docker", docker::register),
        ("files", files::register),
        ("host", host::register),
        ("integrity", integrity::register),
        ("jobs", jobs_and_purge),
        ("models", models::register),
        ("qdrant", qdrant::register),
        ("reset", reset::register),
        ("stt", stt::register),
    ];
    for &(name, register) in domains {
        let mut reg = Registrar::new(target, specs);
        register(&mut reg);
        engine.register_static_module(name, reg.finish().into());
    }
}

/// `jobs::`: the queue (jobs.rs) and its retention (purge.rs, which reads jobs.rs).
fn jobs_and_purge(reg: &mut Registrar) {
    jobs::register(reg);
    purge::register(reg);
}

/// A spawned task that is cancelled when its handle is dropped (a cancelled run, an early
/// return), instead of running on unobserved.
pub struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
