//! Test hooks: a run killed at a named point, as `kill -9` would (no cleanup, no destructors),
//! to prove that running it again finishes the work (tests/reset.rs).
//!
//! They exist only in builds with the `failpoints` feature, which the tests turn on (Cargo.toml
//! enables it through a dev-dependency on opsh itself). A release binary has no hook and reads
//! no test variable: `OPSH_TEST_FAILPOINT` left set in a production shell changes nothing.

/// Aborts the process when the environment variable `OPSH_TEST_FAILPOINT` names this point.
/// The points: `after_postgres`, `qdrant_deleted` (a collection deleted, not yet created),
/// `after_qdrant`, `after_redis`.
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    if std::env::var("OPSH_TEST_FAILPOINT").is_ok_and(|v| v == name) {
        std::process::abort();
    }
}

/// Without the `failpoints` feature a point is nothing at all.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}
