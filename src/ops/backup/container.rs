//! The PostgreSQL client tools inside the postgres service's container: finding the container,
//! how a tool in it reaches the server (its own unix socket, the password in the exec's
//! environment), a tool's version there, and pg_dump streamed out of an Engine API exec into
//! the dump file.

use crate::config::key;

use crate::ops::Target;
use crate::ops::backup::private::hashed_writer;
use crate::ops::backup::tools::{parse_tool_version, tail};
use crate::ops::clients::postgres::percent_decode;
use crate::ops::error::{ErrorKind, OpError};

/// The postgres service's running container (compose.postgres_service, by its Compose labels).
#[derive(Debug, Clone)]
pub(super) struct InContainer {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) image: String,
}

impl InContainer {
    pub(super) fn describe(&self) -> String {
        format!("in container {}", self.name)
    }

    /// A tool run here that ended with a non-zero status, as the error naming it, the exit code
    /// and the end of what it said on stderr; Ok when it succeeded.
    pub(super) fn checked(
        &self,
        target: &Target,
        tool: &str,
        ran: &crate::ops::docker::Streamed,
    ) -> Result<(), OpError> {
        if ran.exit_code == 0 {
            return Ok(());
        }
        Err(OpError::backend(
            target.pg_backend(),
            ErrorKind::Failed,
            format!(
                "{tool} {} failed (exit {}): {}",
                self.describe(),
                ran.exit_code,
                tail(ran.stderr.as_bytes())
            ),
        ))
    }
}

pub(super) async fn in_container(target: &Target) -> Result<InContainer, OpError> {
    let service = target.settings.text(key::COMPOSE_POSTGRES_SERVICE);
    let running = crate::ops::docker::running(target, service).await?;
    Ok(InContainer {
        id: running.id,
        name: running.name,
        image: running.image,
    })
}

/// How a tool in the container reaches the server: its own unix socket directory and port
/// (asked of the server over postgres.url, so nothing about the container is assumed), the
/// URL's user and database, the password only in the exec's environment.
pub(super) struct InsideConnection {
    /// --host, --port, --username, --dbname.
    pub(super) args: Vec<String>,
    /// PGPASSWORD=… (the exec's environment; never its command line).
    pub(super) env: Vec<String>,
}

pub(super) async fn inside_connection(target: &Target) -> Result<InsideConnection, OpError> {
    let (sockets, port): (String, String) = sqlx::query_as(
        "SELECT current_setting('unix_socket_directories'), current_setting('port')",
    )
    .fetch_one(target.pg().await?)
    .await
    .map_err(target.pg_err())?;
    // The first socket directory (an abstract one, `@…`, is not a path); TCP on loopback when
    // the server has none.
    let host = sockets
        .split(',')
        .map(str::trim)
        .find(|s| !s.is_empty() && !s.starts_with('@'))
        .unwrap_or("127.0.0.1")
        .to_string();
    let url = url::Url::parse(target.settings.text(key::POSTGRES_URL))
        .map_err(|e| OpError::backend(target.pg_backend(), ErrorKind::Invalid, e))?;
    let mut args = vec![format!("--host={host}"), format!("--port={port}")];
    if !url.username().is_empty() {
        args.push(format!("--username={}", percent_decode(url.username())));
    }
    args.push(format!(
        "--dbname={}",
        percent_decode(url.path().trim_start_matches('/'))
    ));
    let env = url
        .password()
        .map(|p| vec![format!("PGPASSWORD={}", percent_decode(p))])
        .unwrap_or_default();
    Ok(InsideConnection { args, env })
}

/// A tool's version inside the container (`pg_dump --version` through an exec).
pub(super) async fn container_tool_version(
    target: &Target,
    c: &InContainer,
    program: &str,
) -> Result<(String, u32), OpError> {
    let mut out = Vec::new();
    let ran = crate::ops::docker::exec_stream(
        target,
        &c.id,
        vec![program.to_string(), "--version".to_string()],
        Vec::new(),
        crate::ops::docker::Input::None,
        &mut out,
    )
    .await?;
    let text = String::from_utf8_lossy(&out);
    if ran.exit_code != 0 {
        return Err(OpError::backend(
            target.docker_backend(),
            ErrorKind::Failed,
            format!(
                "{program} --version {} failed (exit {}): {}",
                c.describe(),
                ran.exit_code,
                tail(ran.stderr.as_bytes())
            ),
        ));
    }
    parse_tool_version(&text).ok_or_else(|| {
        OpError::backend(
            target.docker_backend(),
            ErrorKind::Failed,
            format!(
                "cannot read the version of {program} {} from `{}`",
                c.describe(),
                text.trim()
            ),
        )
    })
}

/// pg_dump of the container, its archive streamed out of the exec's stdout into `file` and
/// hashed on the way. Returns the file's size and sha256.
pub(super) async fn dump_in_container(
    target: &Target,
    c: &InContainer,
    snapshot: &str,
    file: std::fs::File,
) -> Result<(u64, String), OpError> {
    let mut cmd = vec!["pg_dump".to_string()];
    let conn = inside_connection(target).await?;
    cmd.extend(conn.args);
    cmd.push("--format=custom".into());
    cmd.push(format!("--snapshot={snapshot}"));
    let mut out = hashed_writer(file);
    // Guarded: interrupted or killed, opsh takes pg_dump down with it, not leaving it to run to
    // the end of a large database holding its snapshot.
    let ran = crate::ops::docker::exec_stream(
        target,
        &c.id,
        crate::ops::docker::guarded(cmd),
        conn.env,
        crate::ops::docker::Input::Held,
        &mut out,
    )
    .await?;
    c.checked(target, "pg_dump", &ran)?;
    Ok(out.finish())
}
