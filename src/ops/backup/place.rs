//! Host or container: where a PostgreSQL client tool runs (setting backup.pg_tools), the choice
//! of pg_dump for the server's version, of pg_restore for an archive and of psql for a plain
//! dump, and running pg_restore or psql on a file at either place.

use std::path::Path;
use std::process::Stdio;

use crate::config::key;
use crate::ops::Target;
use crate::ops::backup::container::{
    InContainer, container_tool_version, in_container, inside_connection,
};
use crate::ops::backup::private::file_err;
use crate::ops::backup::tools::{pg_target, pg_tool, run_tool, server_version, tool_version};
use crate::ops::error::{ErrorKind, OpError};

/// Where the PostgreSQL client tools run: setting backup.pg_tools.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Mode {
    /// The host's when they can do the job, else the postgres container's.
    Auto,
    Host,
    Container,
}

pub(super) fn mode(target: &Target) -> Mode {
    match target.settings.text(key::BACKUP_PG_TOOLS).trim() {
        "host" => Mode::Host,
        "container" => Mode::Container,
        _ => Mode::Auto,
    }
}

/// Where a tool runs.
#[derive(Debug, Clone)]
pub(super) enum Place {
    Host,
    Container(Box<InContainer>),
}

impl Place {
    pub(super) fn describe(&self) -> String {
        match self {
            Place::Host => "on this host".into(),
            Place::Container(c) => c.describe(),
        }
    }

    pub(super) fn container(&self) -> Option<&InContainer> {
        match self {
            Place::Host => None,
            Place::Container(c) => Some(c),
        }
    }
}

/// The pg_dump that will dump the server: the host's when it is at least as new as the server
/// (pg_dump cannot dump a newer server), else — or always, with backup.pg_tools = "container" —
/// the one in the postgres container. Returns the server's version, the tool's, and where.
pub(super) async fn choose_pg_dump(target: &Target) -> Result<(String, String, Place), OpError> {
    let backend = target.pg_backend();
    let (server, server_major) = server_version(target).await?;
    let host_refusal = |tool: &str| {
        format!(
            "pg_dump {tool} on this host is older than the server ({server}) and cannot dump it"
        )
    };
    let container_dump = async |why_not_host: Option<String>| {
        let c = match in_container(target).await {
            Ok(c) => c,
            Err(e) => {
                return Err(match why_not_host {
                    Some(why) => OpError::backend(
                        backend,
                        ErrorKind::Failed,
                        format!(
                            "{why}, and it cannot be dumped in the postgres container either ({}); \
                             install postgresql-client-{server_major} on this host, or set \
                             compose.postgres_service/compose.project to the container's",
                            e.cause
                        ),
                    ),
                    None => e,
                });
            }
        };
        let (tool, major) = container_tool_version(target, &c, "pg_dump").await?;
        if major < server_major {
            return Err(OpError::backend(
                backend,
                ErrorKind::Failed,
                format!(
                    "pg_dump {tool} {} is older than the server ({server}): is it the container of this server?",
                    c.describe()
                ),
            ));
        }
        Ok((tool, Place::Container(Box::new(c))))
    };
    let (tool, place) = match mode(target) {
        Mode::Container => container_dump(None).await?,
        Mode::Host => {
            let (tool, major) = tool_version(backend, "pg_dump").await?;
            if major < server_major {
                return Err(OpError::backend(
                    backend,
                    ErrorKind::Failed,
                    format!(
                        "{}; install postgresql-client-{server_major} on this host, or let opsh \
                         dump inside the postgres container (backup.pg_tools = \"auto\" or \"container\")",
                        host_refusal(&tool)
                    ),
                ));
            }
            (tool, Place::Host)
        }
        Mode::Auto => match tool_version(backend, "pg_dump").await {
            Ok((tool, major)) if major >= server_major => (tool, Place::Host),
            Ok((tool, _)) => container_dump(Some(host_refusal(&tool))).await?,
            Err(e) => container_dump(Some(e.cause)).await?,
        },
    };
    if let Place::Container(c) = &place {
        tracing::debug!("pg_dump {tool} runs {} ({})", c.describe(), c.image);
    }
    Ok((server, tool, place))
}

/// Runs `program` (pg_restore or psql) on `file` with `args`: on the host, the file as its
/// argument; in the container, the file streamed to its stdin (nothing is copied into the
/// container). `connect`: with the configured database's connection options. Returns stdout
/// when `keep_stdout`.
pub(super) async fn run_on_file(
    target: &Target,
    place: &Place,
    program: &str,
    args: &[&str],
    connect: bool,
    file: &Path,
    keep_stdout: bool,
) -> Result<Vec<u8>, OpError> {
    let what = match args.first() {
        Some(a) if a.starts_with("--list") => format!("{program} --list"),
        _ => program.to_string(),
    };
    let psql = program == "psql";
    match place {
        Place::Host => {
            let mut cmd = if connect {
                pg_tool(&pg_target(target)?, program, true)
            } else {
                let mut cmd = tokio::process::Command::new(program);
                cmd.stdin(Stdio::null())
                    .stderr(Stdio::piped())
                    .kill_on_drop(true);
                cmd
            };
            cmd.args(args).stdout(if keep_stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            });
            if psql {
                cmd.arg(format!("--file={}", file.display()));
            } else {
                cmd.arg(file);
            }
            Ok(run_tool(target.pg_backend(), &what, cmd).await?.stdout)
        }
        Place::Container(c) => {
            let mut cmd = vec![program.to_string()];
            let mut env = Vec::new();
            if connect {
                let conn = inside_connection(target).await?;
                cmd.extend(conn.args);
                env = conn.env;
            }
            let opened = tokio::fs::File::open(file)
                .await
                .map_err(|e| file_err("cannot read", file, e))?;
            let input: Box<dyn tokio::io::AsyncRead + Send + Unpin> = if psql {
                // The file comes on stdin, so its end cannot tell a finished restore from one
                // cut off (opsh interrupted: the engine closes the input), and psql's
                // --single-transaction would COMMIT at that end either way. The transaction is
                // in the stream instead: BEGIN, the --command statements, the file, COMMIT; a
                // stream that stops early never reaches COMMIT and the server rolls back.
                let mut head = String::from("BEGIN;\n");
                let mut rest = args.iter();
                let mut kept_args = Vec::new();
                while let Some(a) = rest.next() {
                    match *a {
                        "--single-transaction" => {}
                        "--command" => {
                            if let Some(sql) = rest.next() {
                                head.push_str(sql);
                                head.push('\n');
                            }
                        }
                        other => kept_args.push(other),
                    }
                }
                cmd.extend(kept_args.iter().map(|a| a.to_string()));
                cmd.push("--file=-".into());
                let begin = std::io::Cursor::new(head.into_bytes());
                let commit = std::io::Cursor::new(b"\nCOMMIT;\n".to_vec());
                Box::new(tokio::io::AsyncReadExt::chain(
                    tokio::io::AsyncReadExt::chain(begin, opened),
                    commit,
                ))
            } else {
                cmd.extend(args.iter().map(|a| a.to_string()));
                Box::new(opened)
            };
            let mut kept = Vec::new();
            let mut sink = tokio::io::sink();
            let out: &mut (dyn tokio::io::AsyncWrite + Unpin + Send) =
                if keep_stdout { &mut kept } else { &mut sink };
            let ran = crate::ops::docker::exec_stream(
                target,
                &c.id,
                cmd,
                env,
                crate::ops::docker::Input::Reader(input),
                out,
            )
            .await?;
            c.checked(target, &what, &ran)?;
            Ok(kept)
        }
    }
}

/// Whether a host tool's failure means the host cannot do it (the tool is missing, or too old
/// for the archive's format), not that the file is bad.
pub(super) fn host_cannot(e: &OpError) -> bool {
    e.cause.starts_with("cannot run ") || e.cause.contains("unsupported version")
}

/// `pg_restore --list`: the archive's table of contents, and where pg_restore could read it.
/// With backup.pg_tools = "auto" the host's pg_restore reads it unless it is missing or too old
/// for the archive (a dump by a newer pg_dump), then the postgres container's does.
pub(super) async fn pg_list(target: &Target, file: &Path) -> Result<(String, Place), OpError> {
    let list = async |place: Place| {
        let out = run_on_file(target, &place, "pg_restore", &["--list"], false, file, true).await?;
        Ok::<_, OpError>((String::from_utf8_lossy(&out).into_owned(), place))
    };
    match mode(target) {
        Mode::Host => list(Place::Host).await,
        Mode::Container => list(Place::Container(Box::new(in_container(target).await?))).await,
        Mode::Auto => match list(Place::Host).await {
            Err(e) if host_cannot(&e) => match in_container(target).await {
                Ok(c) => list(Place::Container(Box::new(c))).await,
                Err(ce) => Err(OpError {
                    cause: format!(
                        "{}; and there is no postgres container to run it in ({})",
                        e.cause, ce.cause
                    ),
                    ..e
                }),
            },
            other => other,
        },
    }
}

/// Where psql runs for a plain dump: the host's when it has one (with "auto").
pub(super) async fn psql_place(target: &Target) -> Result<Place, OpError> {
    let on_host = async || {
        tokio::process::Command::new("psql")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success())
    };
    match mode(target) {
        Mode::Host => Ok(Place::Host),
        Mode::Auto if on_host().await => Ok(Place::Host),
        _ => Ok(Place::Container(Box::new(in_container(target).await?))),
    }
}
