//! The script-facing `docker::exec`: a command in a service's running container, and the
//! docker.allow_exec list that gates it.

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use futures_util::TryStreamExt;
use serde::Serialize;

use super::containers::find;
use crate::config::key;
use crate::ops::Target;
use crate::ops::error::{ErrorKind, OpError};

#[derive(Debug, Serialize)]
pub struct Exec {
    pub container: String,
    pub exit_code: i64,
    /// stdout and stderr as they came.
    pub output: String,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a command in a service's first running container and waits for it.
pub async fn exec(target: &Target, service: &str, cmd: Vec<String>) -> Result<Exec, OpError> {
    let found = find(target, Some(&[service.to_string()])).await?;
    let Some(f) = found.iter().find(|f| f.state == "running") else {
        return Err(OpError::backend(
            target.docker_backend(),
            ErrorKind::Failed,
            format!("no running container of `{service}` to run a command in"),
        ));
    };
    exec_in(target, &f.id, f.name.clone(), cmd).await
}

/// Runs a command in the container `id` (running) and waits for it; `name` is what the result
/// calls it.
pub(super) async fn exec_in(
    target: &Target,
    id: &str,
    name: String,
    cmd: Vec<String>,
) -> Result<Exec, OpError> {
    let docker = target.docker().await?;
    let err = target.docker_err();
    let created = docker
        .api
        .create_exec(
            id,
            CreateExecOptions {
                cmd: Some(cmd),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..std::default::Default::default()
            },
        )
        .await
        .map_err(&err)?;
    let mut out = Exec {
        container: name,
        exit_code: -1,
        output: String::new(),
        stdout: String::new(),
        stderr: String::new(),
    };
    if let StartExecResults::Attached { mut output, .. } = docker
        .api
        .start_exec(&created.id, None)
        .await
        .map_err(&err)?
    {
        while let Some(frame) = output.try_next().await.map_err(&err)? {
            let text = String::from_utf8_lossy(&frame.clone().into_bytes()).into_owned();
            match frame {
                LogOutput::StdErr { .. } => out.stderr.push_str(&text),
                _ => out.stdout.push_str(&text),
            }
            out.output.push_str(&text);
        }
    }
    let inspected = docker.api.inspect_exec(&created.id).await.map_err(&err)?;
    out.exit_code = inspected.exit_code.unwrap_or(-1);
    Ok(out)
}

/// The services docker.allow_exec lets scripts run commands in ("*": all).
fn exec_allow_list(target: &Target) -> Vec<String> {
    target
        .settings
        .list(key::DOCKER_ALLOW_EXEC)
        .iter()
        .flat_map(|item| item.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The gate of the script-facing docker::exec (DESIGN: scripts get no shell unless the
/// configuration allows it). `service` may be a container name whose service is listed.
/// opsh's own fixed commands (e.g. a backup's pg_dump) call [`exec`] directly, ungated.
pub(super) async fn exec_allowed(target: &Target, service: &str) -> Result<(), OpError> {
    let allowed = exec_allow_list(target);
    if allowed.iter().any(|a| a == "*" || a == service) {
        return Ok(());
    }
    if !allowed.is_empty() {
        // A container name: its service decides (a name not found is simply not allowed).
        let found = find(target, Some(&[service.to_string()])).await;
        if found.is_ok_and(|found| found.iter().any(|f| allowed.contains(&f.service))) {
            return Ok(());
        }
    }
    let now = if allowed.is_empty() {
        "none is allowed now".to_string()
    } else {
        format!("allowed now: {}", allowed.join(", "))
    };
    Err(OpError::new(
        ErrorKind::Refused,
        None,
        format!(
            "running a command in `{service}` is not allowed: scripts get no shell in containers unless the configuration allows it ({now}); list the service in docker.allow_exec (opsh.toml: [docker] allow_exec = [\"{service}\"], or [\"*\"] for all; environment: OPSH_DOCKER_ALLOW_EXEC)"
        ),
    ))
}
