//! Container logs: fetched (tail, since, grep) and merged in time order, or followed to stdout.

use std::io::Write;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use futures_util::future::join_all;
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;

use super::containers::{Found, find};
use crate::ops::Target;
use crate::ops::error::{ErrorKind, OpError};

#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub service: String,
    pub container: String,
    pub stream: String,
    /// RFC 3339 with nanoseconds, as the engine stamped the line.
    pub time: String,
    pub text: String,
}

#[derive(Debug, Serialize)]
pub struct Logs {
    /// Lines matched (all lines when no grep), oldest first across containers; empty when
    /// followed (they went to stdout).
    pub lines: Vec<LogLine>,
    pub count: i64,
    pub followed: bool,
}

pub struct LogRequest {
    pub tail: Option<i64>,
    pub since: Option<Duration>,
    pub grep: Option<regex::Regex>,
    pub follow: bool,
}

/// Splits an engine log frame into lines, with their timestamps.
fn frame_lines(f: &Found, out: LogOutput, partial: &mut String) -> Vec<LogLine> {
    let (stream, bytes) = match out {
        LogOutput::StdErr { message } => ("stderr", message),
        LogOutput::StdOut { message } => ("stdout", message),
        LogOutput::Console { message } => ("stdout", message),
        LogOutput::StdIn { message } => ("stdin", message),
    };
    partial.push_str(&String::from_utf8_lossy(&bytes));
    let mut lines = Vec::new();
    while let Some(end) = partial.find('\n') {
        let line: String = partial.drain(..=end).collect();
        let line = line.trim_end_matches(['\n', '\r']);
        let (time, text) = line.split_once(' ').unwrap_or(("", line));
        lines.push(LogLine {
            service: f.service.clone(),
            container: f.name.clone(),
            stream: stream.into(),
            time: time.into(),
            text: text.into(),
        });
    }
    lines
}

/// The log streams of every container found, merged as their lines come, each frame cut into
/// lines (a line split across frames is kept until its end arrives).
fn merged<'a>(
    api: &'a bollard::Docker,
    found: &'a [Found],
    options: &LogsOptions,
) -> futures_util::stream::SelectAll<
    futures_util::stream::BoxStream<'a, Result<Vec<LogLine>, bollard::errors::Error>>,
> {
    futures_util::stream::select_all(found.iter().map(|f| {
        let mut partial = String::new();
        api.logs(&f.id, Some(options.clone()))
            .map(move |frame| frame.map(|o| frame_lines(f, o, &mut partial)))
            .boxed()
    }))
}

/// The logs of a service's containers (or of the whole project), optionally filtered by a
/// regular expression; with `follow` they stream to stdout until the containers stop or the
/// run is cancelled (Ctrl-C).
pub async fn logs(
    target: &Target,
    services: Option<&[String]>,
    req: &LogRequest,
) -> Result<Logs, OpError> {
    let found = find(target, services).await?;
    let docker = target.docker().await?;
    let since = req
        .since
        .map(|d| (chrono::Utc::now().timestamp() - d.as_secs() as i64).max(0) as i32)
        .unwrap_or(0);
    let options = LogsOptions {
        follow: req.follow,
        stdout: true,
        stderr: true,
        since,
        until: 0,
        timestamps: true,
        tail: req
            .tail
            .map(|t| t.max(0).to_string())
            .unwrap_or_else(|| "all".into()),
    };
    let keep = |l: &LogLine| req.grep.as_ref().is_none_or(|re| re.is_match(&l.text));
    if req.follow {
        let mut merged = merged(&docker.api, &found, &options);
        let mut count = 0;
        while let Some(lines) = merged.try_next().await.map_err(target.docker_err())? {
            let mut stdout = std::io::stdout().lock();
            let mut written = Ok(());
            for l in lines.iter().filter(|l| keep(l)) {
                count += 1;
                // A container's log may quote its configuration: masked as all output is.
                written = written.and_then(|()| {
                    writeln!(stdout, "{} | {}", l.container, crate::redact::text(&l.text))
                });
            }
            match written.and_then(|()| stdout.flush()) {
                Ok(()) => {}
                // The reader went away (`| head`): stop following and end the run as a print
                // to a closed stdout does.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    target.bridge.cancel(crate::bridge::Stop::Output);
                    break;
                }
                Err(e) => {
                    return Err(OpError::new(
                        ErrorKind::Failed,
                        None,
                        format!("cannot write the logs to stdout: {e}"),
                    ));
                }
            }
        }
        return Ok(Logs {
            lines: Vec::new(),
            count,
            followed: true,
        });
    }
    let fetched = join_all(found.iter().map(|f| {
        let api = &docker.api;
        let options = options.clone();
        async move {
            let mut partial = String::new();
            let frames: Vec<LogOutput> = api.logs(&f.id, Some(options)).try_collect().await?;
            let mut lines = Vec::new();
            for frame in frames {
                lines.extend(frame_lines(f, frame, &mut partial));
            }
            Ok::<_, bollard::errors::Error>(lines)
        }
    }))
    .await;
    let mut lines = Vec::new();
    for got in fetched {
        lines.extend(got.map_err(target.docker_err())?.into_iter().filter(keep));
    }
    // RFC 3339 stamps in UTC sort as text; stable, so one container's order stays.
    lines.sort_by(|a, b| a.time.cmp(&b.time));
    Ok(Logs {
        count: lines.len() as i64,
        lines,
        followed: false,
    })
}

/// Follows one service's logs as `docker logs -f` does, handing each batch of new lines to
/// `each` as the engine sends it: first the last `tail` lines, or, with `after` (an engine
/// timestamp from an earlier follow), every line written after it. Returns when every stream
/// has ended: its container stopped, restarted or was removed (the caller looks at its state
/// and follows again). An error when the service has no container.
pub async fn follow_service(
    target: &Target,
    service: &str,
    tail: i64,
    after: Option<&str>,
    each: &mut (dyn FnMut(Vec<LogLine>) + Send),
) -> Result<(), OpError> {
    let found = find(target, Some(&[service.to_string()])).await?;
    let docker = target.docker().await?;
    // The engine's `since` is in whole seconds: lines of that second already seen are dropped
    // below by their nanosecond stamps.
    // (Compared as times: the engine's RFC 3339 stamps drop trailing zeros, so not as text.)
    let after_time = after.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let since = after_time.map_or(0, |t| i32::try_from(t.timestamp()).unwrap_or(0));
    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        since,
        until: 0,
        timestamps: true,
        tail: if after.is_some() {
            "all".into()
        } else {
            tail.max(0).to_string()
        },
    };
    let mut merged = merged(&docker.api, &found, &options);
    while let Some(lines) = merged.try_next().await.map_err(target.docker_err())? {
        let lines: Vec<LogLine> = lines
            .into_iter()
            .filter(|l| {
                after_time.is_none_or(|a| {
                    chrono::DateTime::parse_from_rfc3339(&l.time).map_or(true, |t| t > a)
                })
            })
            .collect();
        if !lines.is_empty() {
            each(lines);
        }
    }
    Ok(())
}
