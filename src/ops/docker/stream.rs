//! opsh's own commands in containers (a backup's pg_dump, a restore's input): an exec whose
//! input and output stream, guarded so it dies with opsh, and one file copied out.

use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use futures_util::TryStreamExt;

use crate::ops::Target;
use crate::ops::error::{ErrorKind, OpError};

/// What a streamed exec ended with.
#[derive(Debug)]
pub struct Streamed {
    pub exit_code: i64,
    /// The last 64 KiB of its stderr.
    pub stderr: String,
    pub stdout_bytes: u64,
}

const STDERR_KEEP: usize = 64 * 1024;

/// What an exec's standard input is.
pub enum Input<'a> {
    /// None.
    None,
    /// Attached, never written: it closes when opsh lets go of the exec — at its end, or when
    /// opsh is interrupted or killed, since the engine closes the input of an exec whose client
    /// went away. [`guarded`] takes that as the sign to stop the command.
    Held,
    /// Fed from this reader, then closed.
    Reader(Box<dyn tokio::io::AsyncRead + Send + Unpin + 'a>),
}

/// A POSIX sh wrapper that runs its arguments with stdin from /dev/null and kills them when its
/// own stdin closes: with [`Input::Held`], a command opsh started in a container does not run on
/// after opsh is gone (a pg_dump holding a snapshot on the server for hours). Its exit status is
/// the command's.
const GUARD: &str = "exec 3<&0; \"$@\" </dev/null 3<&- & p=$!; \
                     (cat <&3 >/dev/null; kill $p 2>/dev/null) >/dev/null 2>&1 & \
                     exec 3<&-; wait $p";

/// `cmd` inside [`GUARD`] (needs sh and cat in the container, as the official images have).
pub fn guarded(cmd: Vec<String>) -> Vec<String> {
    let mut out = vec![
        "sh".to_string(),
        "-c".to_string(),
        GUARD.to_string(),
        "opsh-guard".to_string(),
    ];
    out.extend(cmd);
    out
}

/// Runs `cmd` in a container through the Engine API's exec, streaming: `stdin` is fed to its
/// standard input, its stdout goes into `stdout` as it comes (never held whole in memory), its
/// stderr is kept (the last 64 KiB). `env` ("KEY=value") is the exec's environment on top of
/// the container's, which is where secrets go: never into `cmd`, which `docker inspect` and
/// `ps` show. A non-zero exit is not an error here: the caller reads `exit_code`.
pub async fn exec_stream(
    target: &Target,
    container: &str,
    cmd: Vec<String>,
    env: Vec<String>,
    stdin: Input<'_>,
    stdout: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
) -> Result<Streamed, OpError> {
    use bollard::exec::StartExecOptions;
    use tokio::io::AsyncWriteExt;

    let docker = target.docker().await?;
    let err = target.docker_err();
    let created = docker
        .api
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(cmd),
                env: Some(env),
                attach_stdin: Some(!matches!(stdin, Input::None)),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                tty: Some(false),
                ..std::default::Default::default()
            },
        )
        .await
        .map_err(&err)?;
    let started = docker
        .api
        .start_exec(
            &created.id,
            Some(StartExecOptions {
                detach: false,
                tty: false,
                output_capacity: Some(1 << 20),
            }),
        )
        .await
        .map_err(&err)?;
    let StartExecResults::Attached {
        mut output,
        mut input,
    } = started
    else {
        return Err(OpError::backend(
            target.docker_backend(),
            ErrorKind::Failed,
            "the engine started the exec detached",
        ));
    };
    let mut stderr: Vec<u8> = Vec::new();
    let mut stdout_bytes = 0u64;
    let feed = async {
        match stdin {
            Input::None => {}
            Input::Held => std::future::pending::<()>().await,
            Input::Reader(mut reader) => {
                tokio::io::copy(&mut reader, &mut input).await?;
                // The end of the reader is the end of its input.
                input.shutdown().await?;
            }
        }
        Ok::<(), std::io::Error>(())
    };
    let drain = async {
        while let Some(frame) = output.try_next().await.map_err(&err)? {
            match frame {
                LogOutput::StdErr { message } => {
                    stderr.extend_from_slice(&message);
                    if stderr.len() > 2 * STDERR_KEEP {
                        stderr.drain(..stderr.len() - STDERR_KEEP);
                    }
                }
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    stdout.write_all(&message).await.map_err(|e| {
                        OpError::new(
                            ErrorKind::Failed,
                            None,
                            format!("cannot write the output of the exec: {e}"),
                        )
                    })?;
                    stdout_bytes += message.len() as u64;
                }
                LogOutput::StdIn { .. } => {}
            }
        }
        stdout.flush().await.map_err(|e| {
            OpError::new(
                ErrorKind::Failed,
                None,
                format!("cannot write the output of the exec: {e}"),
            )
        })?;
        Ok::<(), OpError>(())
    };
    // The output ends when the process does; a process that stops reading its input early (it
    // failed) must not leave the feed waiting for ever, so the feed is dropped then.
    let fed = {
        let (feed, drain) = (std::pin::pin!(feed), std::pin::pin!(drain));
        match futures_util::future::select(feed, drain).await {
            futures_util::future::Either::Left((r, drain)) => {
                drain.await?;
                Some(r)
            }
            futures_util::future::Either::Right((r, _)) => {
                r?;
                None
            }
        }
    };
    // The exec's state can lag its output's end by a moment.
    let mut exit_code = None;
    for _ in 0..200 {
        let inspected = docker.api.inspect_exec(&created.id).await.map_err(&err)?;
        if inspected.running != Some(true) {
            exit_code = inspected.exit_code;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut stderr = String::from_utf8_lossy(&stderr).into_owned();
    if let Some(Err(e)) = fed {
        // Only worth saying when the process did not say why itself.
        if stderr.trim().is_empty() {
            stderr = format!("feeding its input failed: {e}");
        }
    }
    Ok(Streamed {
        exit_code: exit_code.unwrap_or(-1),
        stderr,
        stdout_bytes,
    })
}

/// Copies one file out of a container (the Engine API's archive endpoint, a tar stream),
/// extracting it as it arrives into `to`. Returns its size and modification time.
pub async fn copy_out(
    target: &Target,
    container: &str,
    path: &str,
    to: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
) -> Result<crate::tar::Entry, OpError> {
    use bollard::query_parameters::DownloadFromContainerOptions;
    use tokio::io::AsyncWriteExt;

    let docker = target.docker().await?;
    let err = target.docker_err();
    let mut stream = docker.api.download_from_container(
        container,
        Some(DownloadFromContainerOptions {
            path: path.to_string(),
        }),
    );
    let bad = |why: String| {
        OpError::backend(
            target.docker_backend(),
            ErrorKind::Failed,
            format!("copying {path} out of the container: {why}"),
        )
    };
    let mut tar = crate::tar::TarOne::new();
    while let Some(chunk) = stream.try_next().await.map_err(&err)? {
        let mut input = &chunk[..];
        while !input.is_empty() {
            if let Some(data) = tar.next(&mut input).map_err(&bad)? {
                to.write_all(data)
                    .await
                    .map_err(|e| bad(format!("cannot write it here: {e}")))?;
            }
        }
    }
    to.flush()
        .await
        .map_err(|e| bad(format!("cannot write it here: {e}")))?;
    tar.finish().map_err(bad)
}
