//! The typed operations, a domain per file. Each domain has a plain async Rust API whose results
//! derive Serialize, and one `register` that exposes it to Rhai as a static module.

pub mod db;
pub mod jobs;
pub mod support;
mod target;

pub use target::{Flags, Target};

use std::rc::Rc;

/// Registers every domain's module (`db::`, `jobs::`, …) into the engine.
pub fn register_all(engine: &mut rhai::Engine, target: &Rc<Target>) {
    engine.register_static_module("db", db::module(target).into());
    engine.register_static_module("jobs", jobs::module(target).into());
}
