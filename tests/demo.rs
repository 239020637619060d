//! `make demo` on the local path (PostgreSQL and Redis from the system's packages, the Qdrant
//! double), with this build's opsh and qdrant-double so nothing is rebuilt in release; and the
//! sandbox's compose file as the Compose CLI reads it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The debug qdrant-double next to this build's opsh, built when missing.
fn qdrant_double() -> PathBuf {
    let opsh = PathBuf::from(env!("CARGO_BIN_EXE_opsh"));
    let double = opsh.with_file_name("qdrant-double");
    if !double.exists() {
        let ok = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "qdrant-double"])
            .current_dir(root())
            .status()
            .expect("cargo build -p qdrant-double")
            .success();
        assert!(ok, "cargo build -p qdrant-double failed");
    }
    double
}

/// Runs `make demo-down` when dropped, so a failing test leaves nothing running.
struct Down<'a>(&'a Path);
impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = Command::new("make")
            .args(["--no-print-directory", "demo-down"])
            .current_dir(self.0)
            .output();
    }
}

#[test]
fn make_demo_local_finds_the_problems_then_is_healthy() {
    let root = root();
    // The demo owns .demo/ in the worktree: one test at a time uses it.
    let _down = Down(&root);
    let out = Command::new("make")
        .args(["--no-print-directory", "demo"])
        .current_dir(&root)
        .env("OPSH_DEMO_LOCAL", "1")
        .env("OPSH", env!("CARGO_BIN_EXE_opsh"))
        .env("QDRANT_DOUBLE", qdrant_double())
        .output()
        .expect("make demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "make demo failed\n{stdout}\n{stderr}");
    let part = |from: &str, to: &str| -> String {
        let a = stdout
            .find(from)
            .unwrap_or_else(|| panic!("no `{from}` in\n{stdout}"));
        let b = stdout[a..].find(to).map_or(stdout.len(), |b| a + b);
        stdout[a..b].to_string()
    };
    assert!(
        stdout.starts_with("OPSH_DEMO_LOCAL=1; running the same demo on local services"),
        "{stdout}"
    );
    let first = part("== 1. opsh check-data", "== 2.");
    for line in [
        "WARNING vector_mappings ↔ youtube_content: 17 rows, 19 points, 16 matched, 1 missing, 3 orphans, 0 invalid",
        "WARNING content ↔ youtube_summaries: 8 rows, 7 points, 6 matched, 0 missing, 1 orphan, 0 invalid",
        "WARNING vector_stored content: 1 content item is marked vector_stored, with chunks or summary missing",
        "WARNING stuck jobs: 1 job processing for more than 1 day",
        "Status: WARNING",
    ] {
        assert!(first.contains(line), "first check lacks `{line}`:\n{first}");
    }
    let fix = part("== 2.", "== 3.");
    for line in [
        "OK orphans in youtube_content: 3 of 3 orphan vectors were deleted",
        "OK orphans in youtube_summaries: 1 of 1 orphan vector was deleted",
        "OK stuck jobs: 1 job was reset to pending, 0 to failed",
    ] {
        assert!(fix.contains(line), "fix lacks `{line}`:\n{fix}");
    }
    let step = part("== 3.", "== 4.");
    assert!(
        step.contains("deleted content 6: 1 chunk point, 1 summary point, 2 mappings"),
        "{step}"
    );
    let last = part("== 4. opsh check-data", "== Try next");
    for line in [
        "OK vector_mappings ↔ youtube_content: 15 rows, 15 points, 15 matched, 0 missing, 0 orphans, 0 invalid",
        "OK content ↔ youtube_summaries: 7 rows, 5 points, 5 matched, 0 missing, 0 orphans, 0 invalid",
        "OK vector_stored content: every one has its vectors",
        "OK stuck jobs: none processing for more than 1 day",
        "Status: OK",
    ] {
        assert!(last.contains(line), "last check lacks `{line}`:\n{last}");
    }
    assert!(stdout.contains("make demo-down"), "{stdout}");

    // demo-down removes what it made.
    let down = Command::new("make")
        .args(["--no-print-directory", "demo-down"])
        .current_dir(&root)
        .output()
        .expect("make demo-down");
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(!root.join(".demo").exists(), ".demo is still there");
}

#[test]
fn the_compose_file_is_accepted_by_the_compose_cli() {
    let out = match Command::new("docker-compose")
        .args([
            "-p",
            "youtube_agent",
            "-f",
            "docker-compose.yml",
            "config",
            "-q",
        ])
        .current_dir(root())
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            panic!("docker-compose could not be run ({e}); install it (Debian: docker-compose)")
        }
    };
    assert!(
        out.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
