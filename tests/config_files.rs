//! Configuration files others can change are refused, as ssh refuses its config: opsh.toml
//! (wherever it is found) and .env must be owned by the user or root and writable by nobody
//! else, and so must every directory on the way to them (a root-owned sticky directory such
//! as /tmp excepted). A file holding a secret that every user may read is warned about.
//! The tests run as root, so another owner is a chown away.

mod support;

use std::os::unix::fs::{PermissionsExt, chown};
use std::path::Path;

use support::Opsh;

const SECRET_TOML: &str = "[postgres]\nurl = \"postgres://u:s3cret@db.example/app\"\n";
const PLAIN_TOML: &str = "[compose]\nproject = \"from_file\"\n";

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `-e` that needs no backend: what matters is whether the settings load.
fn eval(opsh: Opsh) -> support::Run {
    opsh.args(["-e", "40 + 2"]).run()
}

#[test]
fn an_opsh_toml_others_may_write_is_refused_with_the_chmod_that_fixes_it() {
    for (mode, writers) in [
        (0o666, "its group and others"),
        (0o646, "others"),
        (0o664, "its group"),
    ] {
        let opsh = Opsh::new().file("opsh.toml", PLAIN_TOML);
        let file = opsh.path().join("opsh.toml");
        chmod(&file, mode);
        let file = file.display();
        eval(opsh).expect(
            3,
            "",
            &format!(
                "opsh: error: refusing config file {file}: it is writable by {writers} (mode {mode:o}); run `chmod go-w {file}` to fix it\n"
            ),
        );
    }
}

#[test]
fn an_opsh_toml_of_another_user_is_refused_even_for_root() {
    // ssh's rule: the owner must be the user or root. Root reading a file that nobody (or any
    // other user) may change would run with whatever that user puts there.
    let opsh = Opsh::new().file("opsh.toml", PLAIN_TOML);
    let file = opsh.path().join("opsh.toml");
    chown(&file, Some(65534), None).unwrap();
    let shown = file.display();
    let run = eval(opsh);
    run.expect(
        3,
        "",
        &format!(
            "opsh: error: refusing config file {shown}: it is owned by {} (uid 65534), not by you (root) or root; run `chown root {shown}` to fix it\n",
            user_65534()
        ),
    );
}

/// The name /etc/passwd gives uid 65534 (nobody on Debian).
fn user_65534() -> String {
    std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.get(2) == Some(&"65534")).then(|| f[0].to_string())
        })
        .expect("uid 65534 in /etc/passwd")
}

#[test]
fn an_opsh_toml_in_a_directory_others_may_write_is_refused_unless_it_is_sticky() {
    let opsh = Opsh::new().file("site/opsh.toml", PLAIN_TOML);
    let dir = opsh.path().join("site");
    let file = dir.join("opsh.toml");
    chmod(&dir, 0o777);
    let opsh = opsh.args(["--config", file.to_str().unwrap()]);
    eval_refused_for_dir(opsh, &file, &dir);
    // Sticky and root's, as /tmp: only an entry's owner may replace it, so it passes.
    let opsh = Opsh::new().file("site/opsh.toml", PLAIN_TOML);
    let dir = opsh.path().join("site");
    let file = dir.join("opsh.toml");
    chmod(&dir, 0o1777);
    eval(opsh.args(["--config", file.to_str().unwrap()])).expect(0, "42\n", "");
}

fn eval_refused_for_dir(opsh: Opsh, file: &Path, dir: &Path) {
    eval(opsh).expect(
        3,
        "",
        &format!(
            "opsh: error: refusing config file {}: directory {} is writable by its group and others (mode 777); run `chmod go-w {}` to fix it\n",
            file.display(),
            dir.display(),
            dir.display()
        ),
    );
}

#[test]
fn the_user_config_and_opsh_config_are_checked_too() {
    // ~/.config/opsh/opsh.toml (HOME is the temp dir).
    let opsh = Opsh::new().file(".config/opsh/opsh.toml", PLAIN_TOML);
    let file = opsh.path().join(".config/opsh/opsh.toml");
    chmod(&file, 0o666);
    let run = eval(opsh);
    run.code(3);
    assert!(
        run.stderr.starts_with(&format!(
            "opsh: error: refusing config file {}: it is writable",
            file.display()
        )),
        "{}",
        run.stderr
    );
    // OPSH_CONFIG.
    let opsh = Opsh::new().file("elsewhere.toml", PLAIN_TOML);
    let file = opsh.path().join("elsewhere.toml");
    chmod(&file, 0o666);
    let run = eval(opsh.env("OPSH_CONFIG", file.to_str().unwrap()));
    run.code(3);
    assert!(
        run.stderr
            .contains(&format!("run `chmod go-w {}`", file.display())),
        "{}",
        run.stderr
    );
}

#[test]
fn a_dotenv_others_may_write_or_of_another_user_is_refused() {
    let opsh = Opsh::new().file(".env", "COMPOSE_PROJECT_NAME=x\n");
    let file = opsh.path().join(".env");
    chmod(&file, 0o666);
    let shown = file.display();
    eval(opsh).expect(
        3,
        "",
        &format!(
            "opsh: error: refusing file {shown}: it is writable by its group and others (mode 666); run `chmod go-w {shown}` to fix it\n"
        ),
    );
    let opsh = Opsh::new().file(".env", "COMPOSE_PROJECT_NAME=x\n");
    let file = opsh.path().join(".env");
    chown(&file, Some(65534), None).unwrap();
    let run = eval(opsh);
    run.code(3);
    assert!(
        run.stderr
            .contains(&format!("run `chown root {}`", file.display())),
        "{}",
        run.stderr
    );
}

#[test]
fn a_secret_readable_by_others_is_warned_about() {
    // opsh.toml with a password in a URL, written 0644 as an editor with umask 022 would.
    let opsh = Opsh::new().file("opsh.toml", SECRET_TOML);
    let file = opsh.path().join("opsh.toml").display().to_string();
    eval(opsh).expect(
        0,
        "42\n",
        &format!(
            " WARN {file} holds a secret and is readable by others (mode 644); run `chmod o-r {file}`\n"
        ),
    );
    // A .env with the deployment's password lines.
    let opsh = Opsh::new().file(".env", "POSTGRES_PASSWORD=youtube_pass\n");
    let file = opsh.path().join(".env").display().to_string();
    eval(opsh).expect(
        0,
        "42\n",
        &format!(
            " WARN {file} holds a secret and is readable by others (mode 644); run `chmod o-r {file}`\n"
        ),
    );
    // Fixed as the warning says: quiet.
    let opsh = Opsh::new().file("opsh.toml", SECRET_TOML);
    chmod(&opsh.path().join("opsh.toml"), 0o640);
    eval(opsh).expect(0, "42\n", "");
    // No secret: nothing to warn about, whatever the mode.
    eval(Opsh::new().file("opsh.toml", PLAIN_TOML)).expect(0, "42\n", "");
    eval(Opsh::new().file(".env", "COMPOSE_PROJECT_NAME=x\n")).expect(0, "42\n", "");
}
