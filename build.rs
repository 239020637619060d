//! Embeds scripts/*.rhai into the binary as the bundled procedures, and the facts of the build
//! that `opsh --version` shows and the system configuration's place.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    build_facts();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    println!("cargo::rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".rhai"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut out = String::from("pub static BUNDLED: &[(&str, &str)] = &[\n");
    for file in &names {
        let name = file.trim_end_matches(".rhai");
        let path = dir.join(file);
        println!("cargo::rerun-if-changed={}", path.display());
        let _ = writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        );
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("bundled.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
}

/// The commit and date of the build (`opsh --version`), and the directory of the system-wide
/// configuration (OPSH_SYSCONFDIR, default /etc, as a packager's PREFIX may want).
fn build_facts() {
    println!("cargo::rerun-if-env-changed=OPSH_SYSCONFDIR");
    println!("cargo::rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let sysconfdir = std::env::var("OPSH_SYSCONFDIR").unwrap_or_else(|_| "/etc".into());
    println!(
        "cargo::rustc-env=BUILD_OPSH_SYSCONFDIR={}",
        sysconfdir.trim_end_matches('/')
    );

    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let commit = git(&["rev-parse", "--short=10", "HEAD"]).unwrap_or_else(|| "unknown".into());
    // The commit's own date: the same source gives the same version text (reproducible builds);
    // SOURCE_DATE_EPOCH wins where a packager sets it.
    let date = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .map(|secs| civil_date(secs.div_euclid(86_400)))
        .or_else(|| git(&["log", "-1", "--format=%cs"]))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo::rustc-env=BUILD_OPSH_COMMIT={commit}");
    println!("cargo::rustc-env=BUILD_OPSH_DATE={date}");
    // A new commit moves the branch's ref, not HEAD: watch both (and packed-refs).
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for path in watched {
        if let Some(file) = git(&["rev-parse", "--git-path", &path]) {
            let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            println!("cargo::rerun-if-changed={}", file.display());
        }
    }
}

/// YYYY-MM-DD of a day count since 1970-01-01 (Howard Hinnant's civil_from_days).
fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}
