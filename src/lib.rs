//! opsh: the operations shell of the youtube_agent stack. A Rust core registers typed
//! operations into an embedded Rhai engine; procedures are bundled scripts.

pub mod api;
pub mod bridge;
pub mod cli;
pub mod columns;
pub mod complete;
pub mod config;
pub mod duration;
pub mod error;
pub mod failpoint;
pub mod host;
pub mod logging;
pub mod ops;
pub mod output;
pub mod redact;
pub mod repl;
pub mod report;
pub mod runner;
pub mod schedule;
pub mod suggest;
pub mod tar;
pub mod text;
pub mod tls;
pub mod top;
pub mod trust;
