//! Fitting the operator's machine: `make install` lays out the binary, the man page, the
//! completions and an example configuration; configuration is found the same way from any
//! working directory; `--version` names the build.

mod support;

use std::process::Command;

use support::Opsh;

fn settings_of(json: &serde_json::Value, key: &str) -> (String, String) {
    let entry = json["settings"]
        .as_array()
        .expect("config --json has its settings")
        .iter()
        .find(|e| e["key"] == key)
        .unwrap_or_else(|| panic!("no {key} in {json}"));
    (
        entry["value"].as_str().unwrap().to_string(),
        entry["source"].as_str().unwrap().to_string(),
    )
}

#[test]
fn make_install_lays_out_binary_man_page_completions_and_example_config() {
    let dest = tempfile::tempdir().unwrap();
    let out = Command::new("make")
        .args([
            "--no-print-directory",
            "install-files",
            &format!("OPSH_BIN={}", env!("CARGO_BIN_EXE_opsh")),
            &format!("DESTDIR={}", dest.path().display()),
            "PREFIX=/usr/local",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("make runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = dest.path();
    let bin = root.join("usr/local/bin/opsh");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&bin).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o755);
    let man = std::fs::read_to_string(root.join("usr/local/share/man/man1/opsh.1")).unwrap();
    assert!(man.contains(".TH opsh 1"), "{man}");
    // The man page comes from the same definition as --help: every flag is in it.
    for flag in ["\\-\\-dry\\-run", "\\-\\-wait\\-lock", "\\-\\-target"] {
        assert!(man.contains(flag), "{flag} missing from the man page");
    }
    for (path, marker) in [
        (
            "usr/local/share/bash-completion/completions/opsh",
            "_opsh_procedures",
        ),
        (
            "usr/local/share/zsh/site-functions/_opsh",
            "compdef _opsh_procedures opsh",
        ),
        (
            "usr/local/share/fish/vendor_completions.d/opsh.fish",
            "opsh __complete",
        ),
    ] {
        let text = std::fs::read_to_string(root.join(path)).unwrap();
        assert!(text.contains(marker), "{path}: {text}");
    }
    // The example configuration is one opsh reads as it is.
    let example = root.join("etc/opsh/opsh.toml.example");
    let run = Opsh::new()
        .args(["--json", "--config", example.to_str().unwrap(), "config"])
        .run();
    run.code(0);
    assert_eq!(
        settings_of(&run.json(), "backup.dir").0,
        "/var/backups/opsh"
    );
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let run = Opsh::new().args(["--version"]).run();
    run.code(0);
    let head = Command::new("git")
        .args(["rev-parse", "--short=10", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    assert!(
        run.stdout.starts_with(&format!(
            "opsh {} (commit {head}, ",
            env!("CARGO_PKG_VERSION")
        )),
        "{}",
        run.stdout
    );
}

#[test]
fn user_and_local_files_are_layered_and_listed_with_relative_paths_resolved() {
    let opsh = Opsh::new()
        .file(
            ".config/opsh/opsh.toml",
            "[compose]\nproject = \"from_home\"\nfile = \"/srv/stack/docker-compose.yml\"\n[backup]\ndir = \"home-backups\"\n",
        )
        .file("site/opsh.toml", "[compose]\nproject = \"from_cwd\"\n[logs]\ndirs = [\"logs\", \"/var/log/x\"]\n")
        .file("site/env/deploy.env", "REDIS_URL=redis://from-env-file/3\n");
    let home = opsh.path().to_path_buf();
    let cwd = home.join("site");
    // The local file names the deployment's .env relative to itself.
    std::fs::write(
        cwd.join("opsh.toml"),
        "[compose]\nproject = \"from_cwd\"\nenv_file = \"env/deploy.env\"\n[logs]\ndirs = [\"logs\", \"/var/log/x\"]\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = opsh
            .command()
            .current_dir(&cwd)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let json: serde_json::Value = serde_json::from_str(&run(&["--json", "config"])).unwrap();
    let user = home.join(".config/opsh/opsh.toml").display().to_string();
    let local = cwd.join("opsh.toml").display().to_string();
    assert_eq!(json["files"], serde_json::json!([user, local]));
    assert_eq!(
        json["env_file"],
        cwd.join("env/deploy.env").display().to_string()
    );
    // The local file overrides the user's key by key; the user's other keys stay.
    assert_eq!(
        settings_of(&json, "compose.project"),
        ("from_cwd".into(), local.clone())
    );
    assert_eq!(
        settings_of(&json, "compose.file"),
        ("/srv/stack/docker-compose.yml".into(), user.clone())
    );
    // Relative paths are relative to the file that wrote them.
    assert_eq!(
        settings_of(&json, "backup.dir").0,
        home.join(".config/opsh/home-backups").display().to_string()
    );
    assert_eq!(
        settings_of(&json, "logs.dirs").0,
        format!("{}:/var/log/x", cwd.join("logs").display())
    );
    assert_eq!(
        settings_of(&json, "redis.url"),
        (
            "redis://from-env-file/3".into(),
            cwd.join("env/deploy.env").display().to_string()
        )
    );
    let text = run(&["config"]);
    assert!(
        text.starts_with(&format!(
            "# configuration files: {user}, {local}\n# .env: {}\n",
            cwd.join("env/deploy.env").display()
        )),
        "{text}"
    );
}

#[test]
fn with_no_file_config_says_so() {
    let run = Opsh::new().args(["config"]).run();
    run.code(0);
    assert!(
        run.stdout
            .starts_with("# configuration files: none\n# .env: none\n"),
        "{}",
        run.stdout
    );
}

/// /etc/opsh/opsh.toml is read first and from any directory: checked in a mount namespace of
/// its own (root only), where a temp dir is bound over /etc/opsh, so the machine's own
/// configuration is neither read nor changed (an empty /etc/opsh is made if there is none).
#[test]
fn the_system_file_is_read_first_from_any_directory() {
    assert!(
        nix_root(),
        "this test needs root (unshare and mount): run the suite as root, as .ci/run does"
    );
    let etc = tempfile::tempdir().unwrap();
    std::fs::write(
        etc.path().join("opsh.toml"),
        "[compose]\nproject = \"system_wide\"\n[backup]\ndir = \"backups\"\n",
    )
    .unwrap();
    let opsh = Opsh::new().file(".config/opsh/opsh.toml", "[backup]\nkeep_last = 3\n");
    let script = format!(
        "mkdir -p /etc/opsh && mount --bind {} /etc/opsh && cd / && exec {} --json config",
        etc.path().display(),
        env!("CARGO_BIN_EXE_opsh")
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", opsh.path())
        .output()
        .expect("unshare runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let user = opsh
        .path()
        .join(".config/opsh/opsh.toml")
        .display()
        .to_string();
    assert_eq!(
        json["files"],
        serde_json::json!(["/etc/opsh/opsh.toml", user])
    );
    assert_eq!(
        settings_of(&json, "compose.project"),
        ("system_wide".into(), "/etc/opsh/opsh.toml".into())
    );
    assert_eq!(settings_of(&json, "backup.dir").0, "/etc/opsh/backups");
    assert_eq!(settings_of(&json, "backup.keep_last"), ("3".into(), user));
}

fn nix_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
