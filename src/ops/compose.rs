//! `compose::` — creating and removing the stack's containers, which only the Compose CLI knows
//! how to do from the compose file: `docker compose` (v2) when the docker CLI has it, else
//! `docker-compose` (v1), run with the configured file (compose.file) and project
//! (compose.project).

use crate::config::key;
use std::path::PathBuf;
use std::process::Stdio;

use serde::Serialize;
use tokio::process::Command;

use crate::ops::Target;
use crate::ops::destructive::{Change, Confirm, done, proceed};
use crate::ops::error::{ErrorKind, OpError};
use crate::ops::spec::{Default, Example, Kind, Opt, Registrar, Spec};

/// The phrase `compose::down(#{volumes: true})` asks for: the volumes hold the databases.
pub const DELETE_VOLUMES: &str = "DELETE VOLUMES";

/// The installed Compose CLI as argv prefix: ["docker", "compose"] or ["docker-compose"].
async fn cli() -> Result<Vec<String>, OpError> {
    let v2 = Command::new("docker")
        .args(["compose", "version"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success());
    if v2 {
        return Ok(vec!["docker".into(), "compose".into()]);
    }
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("docker-compose").is_file())
    });
    if on_path {
        return Ok(vec!["docker-compose".into()]);
    }
    Err(OpError::new(
        ErrorKind::Failed,
        None,
        "no Compose CLI: neither `docker compose` nor `docker-compose` is installed",
    ))
}

/// The compose files (COMPOSE_FILE may list several, `:`-separated), each checked to exist.
fn files(target: &Target) -> Result<Vec<PathBuf>, OpError> {
    let setting = target.settings.text(key::COMPOSE_FILE);
    let files: Vec<PathBuf> = setting
        .split(':')
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect();
    if files.is_empty() {
        return Err(OpError::invalid(
            "compose.file is empty; set it (or COMPOSE_FILE) to the stack's docker-compose.yml",
        ));
    }
    for f in &files {
        if !f.is_file() {
            return Err(OpError::invalid(format!(
                "compose file {} not found (set compose.file in opsh.toml or COMPOSE_FILE)",
                f.display()
            )));
        }
    }
    Ok(files)
}

#[derive(Debug, Serialize)]
pub struct Ran {
    pub command: String,
    pub dry_run: bool,
    pub exit_code: i64,
    /// What the CLI printed (stdout and stderr; Compose reports progress on stderr).
    pub output: String,
}

async fn run(target: &Target, args: &[String], dry_run: bool) -> Result<Ran, OpError> {
    let mut argv = cli().await?;
    for f in files(target)? {
        argv.push("-f".into());
        argv.push(f.display().to_string());
    }
    argv.push("-p".into());
    argv.push(crate::ops::docker::project_label(
        target.settings.text(key::COMPOSE_PROJECT),
    ));
    argv.extend(args.iter().cloned());
    let command = argv.join(" ");
    if dry_run {
        return Ok(Ran {
            command,
            dry_run: true,
            exit_code: 0,
            output: String::new(),
        });
    }
    tracing::info!("running {command}");
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).stdin(Stdio::null()).kill_on_drop(true);
    let host = target.settings.text(key::DOCKER_HOST);
    if !host.is_empty() {
        cmd.env("DOCKER_HOST", host);
    }
    let out = cmd.output().await.map_err(|e| {
        OpError::new(
            ErrorKind::Failed,
            None,
            format!("cannot run {}: {e}", argv[0]),
        )
    })?;
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    // docker-compose v1 redraws progress lines with \r.
    let output = output.replace("\r\n", "\n").replace('\r', "");
    let exit_code = i64::from(out.status.code().unwrap_or(-1));
    if !out.status.success() {
        let tail: Vec<&str> = output.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(OpError::new(
            ErrorKind::Failed,
            None,
            format!("`{command}` exited with {exit_code}: {}", tail.join(" / ")),
        ));
    }
    Ok(Ran {
        command,
        dry_run: false,
        exit_code,
        output,
    })
}

/// `up -d` of the whole stack or of some services: creates what is missing, starts it.
pub async fn up(target: &Target, services: &[String]) -> Result<Ran, OpError> {
    let mut args = vec!["up".to_string(), "-d".to_string()];
    args.extend(services.iter().cloned());
    run(target, &args, target.flags.dry_run).await
}

/// `down`: removes the project's containers and networks; its volumes only with `volumes`,
/// which needs the phrase DELETE VOLUMES (or --yes).
pub async fn down(target: &Target, volumes: bool) -> Result<Ran, OpError> {
    let containers: i64 = crate::ops::docker::services(target).await?.values().sum();
    let change = Change {
        op: "compose::down",
        summary: if volumes {
            format!("remove {containers} containers and the project's volumes (their data)")
        } else {
            format!("remove {containers} containers (volumes kept)")
        },
        count: if volumes {
            containers.max(1)
        } else {
            containers
        },
        confirm: if volumes {
            Confirm::Phrase(DELETE_VOLUMES)
        } else {
            Confirm::Never
        },
    };
    let go = proceed(target, &change)?;
    let mut args = vec!["down".to_string()];
    if volumes {
        args.push("-v".into());
    }
    let ran = run(target, &args, !go).await?;
    if go {
        done(target, &change, "done");
    }
    Ok(ran)
}

static UP: Spec = Spec {
    module: "compose",
    name: "up",
    params: &[],
    options: &[Opt::new(
        "services",
        Kind::Strings,
        Default::None,
        "only these services (default all)",
    )],
    returns: "Map",
    doc: "Creates and starts the stack's containers (`docker compose up -d`, or docker-compose \
          v1) with compose.file and compose.project. Returns command, dry_run, exit_code, output; \
          a failure is an error with the CLI's last lines. With --dry-run it only names the \
          command.",
    examples: &[Example::new(
        r#"docker::stop(); let u = compose::up(); [u.exit_code, docker::ps().map(|c| c.state)]"#,
        r#"[0, ["running", "running", "running"]]"#,
    )],
};

static DOWN: Spec = Spec {
    module: "compose",
    name: "down",
    params: &[],
    options: &[Opt::new(
        "volumes",
        Kind::Bool,
        Default::Value("false"),
        "also remove the named volumes (the data); asks for the phrase DELETE VOLUMES",
    )],
    returns: "Map",
    doc: "Removes the stack's containers and networks (`docker compose down`); volumes stay \
          unless volumes is true, which is confirmed with DELETE VOLUMES (--yes answers it). \
          With --dry-run nothing is removed.",
    examples: &[Example::new(
        r#"let d = compose::down(); [d.exit_code, docker::ps()]"#,
        "[0, []]",
    )],
};

pub fn register(reg: &mut Registrar) {
    reg.add(&UP, |c| {
        let services = c.opt_strings("services")?.unwrap_or_default();
        c.block(up(c.target, &services))
    });
    reg.add(&DOWN, |c| {
        let volumes = c.bool("volumes")?;
        c.block(down(c.target, volumes))
    });
}
