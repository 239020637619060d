//! `docker::` — the stack's containers through the Docker Engine API: found by their Compose
//! labels (com.docker.compose.project = compose.project, oneoff False), so Compose v1
//! (`project_service_1`) and v2 (`project-service-1`) containers are the same to opsh.
//!
//! Actions (pause, unpause, stop, start, restart) run on all their containers at once and are
//! idempotent: a container already in the wanted state is reported as such, not as an error.

use crate::config::key;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptions, LogsOptions, RestartContainerOptions,
    StartContainerOptions, StatsOptions, StopContainerOptions,
};
use futures_util::future::join_all;
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::ops::Target;
use crate::ops::destructive::{Change, Confirm, done, proceed};
use crate::ops::error::{ErrorKind, OpError};
use crate::ops::spec::{Default, Example, Kind, Opt, Param, Registrar, Spec};

const PROJECT_LABEL: &str = "com.docker.compose.project";
const SERVICE_LABEL: &str = "com.docker.compose.service";
const NUMBER_LABEL: &str = "com.docker.compose.container-number";
const ONEOFF_LABEL: &str = "com.docker.compose.oneoff";

/// The project name as Compose writes it into its label: lower case, only [a-z0-9_-]
/// (docker-compose 1.29's normalize_name; v2 does the same for valid names).
pub fn project_label(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

fn project(target: &Target) -> String {
    project_label(target.settings.text(key::COMPOSE_PROJECT))
}

/// One container of the project, as listed.
#[derive(Debug, Clone)]
struct Found {
    service: String,
    name: String,
    id: String,
    number: i64,
    state: String,
    status: String,
    image: String,
    ports: Vec<String>,
}

fn no_containers_hint(project: &str) -> String {
    format!(
        "no container of the Compose project `{project}` on this engine; set the project with compose.project in opsh.toml or COMPOSE_PROJECT_NAME"
    )
}

/// The project's containers (all states), ordered by service and number; `services` narrows
/// them (a service name or a container name each), an unknown one is an error listing the
/// project's services.
async fn find(target: &Target, services: Option<&[String]>) -> Result<Vec<Found>, OpError> {
    let docker = target.docker().await?;
    let project = project(target);
    let filters = HashMap::from([(
        "label".to_string(),
        vec![
            format!("{PROJECT_LABEL}={project}"),
            format!("{ONEOFF_LABEL}=False"),
        ],
    )]);
    let listed = docker
        .api
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..std::default::Default::default()
        }))
        .await
        .map_err(target.docker_err())?;
    let mut found: Vec<Found> = listed
        .into_iter()
        .map(|c| {
            let labels = c.labels.unwrap_or_default();
            let name = c
                .names
                .unwrap_or_default()
                .first()
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default();
            let mut ports: Vec<String> = c
                .ports
                .unwrap_or_default()
                .iter()
                .map(|p| {
                    let proto = p.typ.map(|t| t.to_string()).unwrap_or_else(|| "tcp".into());
                    match p.public_port {
                        Some(public) => format!(
                            "{}:{public}->{}/{proto}",
                            p.ip.as_deref().unwrap_or("0.0.0.0"),
                            p.private_port
                        ),
                        None => format!("{}/{proto}", p.private_port),
                    }
                })
                .collect();
            ports.sort();
            ports.dedup();
            Found {
                service: labels.get(SERVICE_LABEL).cloned().unwrap_or_default(),
                number: labels
                    .get(NUMBER_LABEL)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1),
                id: c.id.unwrap_or_default().chars().take(12).collect(),
                name,
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                status: c.status.unwrap_or_default(),
                image: c.image.unwrap_or_default(),
                ports,
            }
        })
        .collect();
    found.sort_by(|a, b| (&a.service, a.number).cmp(&(&b.service, b.number)));
    let Some(wanted) = services else {
        if found.is_empty() {
            tracing::warn!("{}", no_containers_hint(&project));
        }
        return Ok(found);
    };
    if found.is_empty() {
        return Err(OpError::backend(
            target.docker_backend(),
            ErrorKind::NotFound,
            no_containers_hint(&project),
        ));
    }
    let known: BTreeSet<&str> = found.iter().map(|f| f.service.as_str()).collect();
    for w in wanted {
        if !known.contains(w.as_str()) && !found.iter().any(|f| &f.name == w) {
            let hint = match crate::suggest::ranked(w, known.iter().copied()).first() {
                Some(s) => format!("did you mean `{s}`? "),
                None => String::new(),
            };
            return Err(OpError::backend(
                target.docker_backend(),
                ErrorKind::NotFound,
                format!(
                    "unknown service `{w}`; {hint}the project `{project}` has {}",
                    known.iter().copied().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    Ok(found
        .into_iter()
        .filter(|f| wanted.iter().any(|w| *w == f.service || *w == f.name))
        .collect())
}

#[derive(Debug, Serialize)]
pub struct Ps {
    pub service: String,
    pub container: String,
    pub id: String,
    pub state: String,
    pub status: String,
    /// healthy, unhealthy or starting; () when the container has no healthcheck.
    pub health: Option<String>,
    pub image: String,
    pub ports: Vec<String>,
    /// Seconds since the container started; () when it is not running.
    pub uptime_seconds: Option<i64>,
}

async fn inspect_one(target: &Target, name: &str) -> Result<ContainerInspectResponse, OpError> {
    let docker = target.docker().await?;
    docker
        .api
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
        .map_err(target.docker_err())
}

fn health_of(i: &ContainerInspectResponse) -> Option<String> {
    let status = i.state.as_ref()?.health.as_ref()?.status?;
    match status.to_string().as_str() {
        "" | "none" => None,
        s => Some(s.to_string()),
    }
}

fn uptime_of(i: &ContainerInspectResponse) -> Option<i64> {
    let state = i.state.as_ref()?;
    if state.running != Some(true) {
        return None;
    }
    let started = chrono::DateTime::parse_from_rfc3339(state.started_at.as_deref()?).ok()?;
    Some((chrono::Utc::now() - started.with_timezone(&chrono::Utc)).num_seconds())
}

/// The project's containers with their state, health and uptime.
pub async fn ps(target: &Target, services: Option<&[String]>) -> Result<Vec<Ps>, OpError> {
    let found = find(target, services).await?;
    let inspected = join_all(found.iter().map(|f| inspect_one(target, &f.id))).await;
    Ok(found
        .into_iter()
        .zip(inspected)
        .map(|(f, i)| {
            // A container removed between the list and the inspect keeps its listed state.
            let i = i.ok();
            Ps {
                health: i.as_ref().and_then(health_of),
                uptime_seconds: i.as_ref().and_then(uptime_of),
                service: f.service,
                container: f.name,
                id: f.id,
                state: f.state,
                status: f.status,
                image: f.image,
                ports: f.ports,
            }
        })
        .collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pause,
    Unpause,
    Stop,
    Start,
    Restart,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Pause => "pause",
            Action::Unpause => "unpause",
            Action::Stop => "stop",
            Action::Start => "start",
            Action::Restart => "restart",
        }
    }

    fn done(self) -> &'static str {
        match self {
            Action::Pause => "paused",
            Action::Unpause => "unpaused",
            Action::Stop => "stopped",
            Action::Start => "started",
            Action::Restart => "restarted",
        }
    }

    /// Whether a container in `state` needs the action; if not, what to report instead.
    fn plan(self, state: &str) -> Result<(), &'static str> {
        match (self, state) {
            (Action::Pause, "running") => Ok(()),
            (Action::Pause, "paused") => Err("already paused"),
            (Action::Pause, _) => Err("not running"),
            (Action::Unpause, "paused") => Ok(()),
            (Action::Unpause, "running") => Err("not paused"),
            (Action::Unpause, _) => Err("not running"),
            (Action::Stop, "running" | "paused" | "restarting") => Ok(()),
            (Action::Stop, _) => Err("already stopped"),
            (Action::Start, "exited" | "created" | "dead") => Ok(()),
            (Action::Start, "running") => Err("already running"),
            (Action::Start, "paused") => Err("paused (unpause it)"),
            (Action::Start, _) => Err("restarting"),
            (Action::Restart, _) => Ok(()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Acted {
    pub service: String,
    pub container: String,
    /// The state before the action.
    pub before: String,
    /// "paused", "already paused", "not running", "would pause", "failed", …
    pub result: String,
    pub changed: bool,
    pub error: Option<String>,
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct Acts {
    pub action: String,
    pub project: String,
    pub dry_run: bool,
    pub changed: i64,
    pub unchanged: i64,
    pub failed: i64,
    pub containers: Vec<Acted>,
}

/// Runs `action` on the project's containers (or those of `services`) all at once.
pub async fn act(
    target: &Target,
    action: Action,
    services: Option<&[String]>,
    timeout: Option<Duration>,
) -> Result<Acts, OpError> {
    let found = find(target, services).await?;
    let docker = target.docker().await?;
    let todo = found
        .iter()
        .filter(|f| action.plan(&f.state).is_ok())
        .count();
    let op = format!("docker::{}", action.name());
    let change = Change {
        op: &op,
        summary: format!("{} {todo} containers", action.name()),
        count: todo as i64,
        confirm: Confirm::Never,
    };
    let go = proceed(target, &change)?;
    let t = timeout.map(|d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX));
    // Stopping many containers takes up to the stop timeout each: show how far it got.
    let progress = crate::ops::progress::Progress::bar(
        if go { todo as u64 } else { 0 },
        &format!("{} containers", action.name()),
    );
    let progress = &progress;
    let containers = join_all(found.iter().map(|f| {
        let api = &docker.api;
        let err = target.docker_err();
        async move {
            let started = Instant::now();
            let mut acted = Acted {
                service: f.service.clone(),
                container: f.name.clone(),
                before: f.state.clone(),
                result: String::new(),
                changed: false,
                error: None,
                seconds: 0.0,
            };
            if let Err(why) = action.plan(&f.state) {
                acted.result = why.to_string();
                return acted;
            }
            if !go {
                acted.result = format!("would {}", action.name());
                return acted;
            }
            let id = f.id.as_str();
            let outcome = match action {
                Action::Pause => api.pause_container(id).await,
                Action::Unpause => api.unpause_container(id).await,
                Action::Stop => {
                    // A frozen process cannot take SIGTERM: thaw it first.
                    let thawed = if f.state == "paused" {
                        api.unpause_container(id).await
                    } else {
                        Ok(())
                    };
                    match thawed {
                        Ok(()) => {
                            api.stop_container(
                                id,
                                Some(StopContainerOptions {
                                    t,
                                    ..std::default::Default::default()
                                }),
                            )
                            .await
                        }
                        Err(e) => Err(e),
                    }
                }
                Action::Start => api.start_container(id, None::<StartContainerOptions>).await,
                Action::Restart => {
                    api.restart_container(
                        id,
                        Some(RestartContainerOptions {
                            t,
                            ..std::default::Default::default()
                        }),
                    )
                    .await
                }
            };
            acted.seconds = started.elapsed().as_secs_f64();
            progress.inc(1);
            match outcome {
                Ok(()) => {
                    acted.result = action.done().to_string();
                    acted.changed = true;
                }
                // 304: the engine found it already in that state (a race with another actor).
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 304, ..
                }) => {
                    acted.result = format!("already {}", action.done());
                }
                Err(e) => {
                    let e = err(e);
                    acted.result = "failed".into();
                    acted.error = Some(e.cause);
                }
            }
            acted
        }
    }))
    .await;
    progress.finish();
    let count = |p: fn(&Acted) -> bool| containers.iter().filter(|a| p(a)).count() as i64;
    let acts = Acts {
        action: action.name().into(),
        project: project(target),
        dry_run: !go,
        changed: count(|a| a.changed),
        failed: count(|a| a.error.is_some()),
        unchanged: count(|a| !a.changed && a.error.is_none()),
        containers,
    };
    if go && todo > 0 {
        done(
            target,
            &change,
            &format!("{} {}, {} failed", acts.changed, action.done(), acts.failed),
        );
    }
    Ok(acts)
}

#[derive(Debug, Serialize)]
pub struct Ready {
    pub ready: bool,
    pub waited_seconds: f64,
    /// Containers not (yet) running, or running but not healthy.
    pub not_ready: Vec<Ps>,
}

/// Polls until every container (of `services`) runs and, where it has a healthcheck, is
/// healthy; or `timeout` passes.
pub async fn wait_ready(
    target: &Target,
    services: Option<&[String]>,
    timeout: Duration,
    poll: Duration,
) -> Result<Ready, OpError> {
    let started = Instant::now();
    loop {
        let not_ready: Vec<Ps> = ps(target, services)
            .await?
            .into_iter()
            .filter(|p| p.state != "running" || p.health.as_deref().is_some_and(|h| h != "healthy"))
            .collect();
        let waited = started.elapsed();
        if not_ready.is_empty() || waited >= timeout {
            return Ok(Ready {
                ready: not_ready.is_empty(),
                waited_seconds: waited.as_secs_f64(),
                not_ready,
            });
        }
        tokio::time::sleep(poll.min(timeout.saturating_sub(waited))).await;
    }
}

#[derive(Debug, Serialize)]
pub struct Stats {
    pub service: String,
    pub container: String,
    pub cpu_percent: f64,
    pub memory_used: i64,
    pub memory_limit: i64,
    pub memory_percent: f64,
    pub net_rx: i64,
    pub net_tx: i64,
    pub block_read: i64,
    pub block_write: i64,
    pub pids: i64,
}

/// One sample of each running container's resource use (`docker stats --no-stream`).
pub async fn stats(target: &Target, services: Option<&[String]>) -> Result<Vec<Stats>, OpError> {
    let found: Vec<Found> = find(target, services)
        .await?
        .into_iter()
        .filter(|f| f.state == "running" || f.state == "paused")
        .collect();
    let docker = target.docker().await?;
    let sampled = join_all(found.iter().map(|f| {
        let api = &docker.api;
        async move {
            // Not one-shot: the engine takes two samples a second apart, so the CPU share
            // has a base to be computed against.
            let mut stream = api.stats(
                &f.id,
                Some(StatsOptions {
                    stream: false,
                    one_shot: false,
                }),
            );
            stream.next().await.transpose()
        }
    }))
    .await;
    let mut out = Vec::new();
    for (f, s) in found.iter().zip(sampled) {
        let Some(s) = s.map_err(target.docker_err())? else {
            continue;
        };
        let u = |v: Option<u64>| v.unwrap_or(0) as i64;
        let cpu = s.cpu_stats.as_ref();
        let pre = s.precpu_stats.as_ref();
        let total = |c: Option<&bollard::models::ContainerCpuStats>| {
            c.and_then(|c| c.cpu_usage.as_ref())
                .and_then(|u| u.total_usage)
                .unwrap_or(0)
        };
        let system = |c: Option<&bollard::models::ContainerCpuStats>| {
            c.and_then(|c| c.system_cpu_usage).unwrap_or(0)
        };
        let cpu_delta = total(cpu).saturating_sub(total(pre)) as f64;
        let system_delta = system(cpu).saturating_sub(system(pre)) as f64;
        let cpus = cpu
            .and_then(|c| c.online_cpus.map(f64::from))
            .or_else(|| {
                cpu.and_then(|c| c.cpu_usage.as_ref())
                    .and_then(|u| u.percpu_usage.as_ref())
                    .map(|p| p.len() as f64)
            })
            .unwrap_or(1.0);
        let cpu_percent = if system_delta > 0.0 {
            cpu_delta / system_delta * cpus * 100.0
        } else {
            0.0
        };
        let mem = s.memory_stats.as_ref();
        // As the docker CLI: usage minus the page cache (cgroup v2 inactive_file, v1
        // total_inactive_file).
        let cache = mem
            .and_then(|m| m.stats.as_ref())
            .and_then(|st| {
                st.get("inactive_file")
                    .or_else(|| st.get("total_inactive_file"))
                    .copied()
            })
            .unwrap_or(0);
        let usage = mem.and_then(|m| m.usage).unwrap_or(0);
        let used = usage.saturating_sub(cache) as i64;
        let limit = u(mem.and_then(|m| m.limit));
        let (mut rx, mut tx) = (0, 0);
        for n in s.networks.as_ref().into_iter().flat_map(|n| n.values()) {
            rx += u(n.rx_bytes);
            tx += u(n.tx_bytes);
        }
        let (mut read, mut write) = (0, 0);
        let entries = s
            .blkio_stats
            .as_ref()
            .and_then(|b| b.io_service_bytes_recursive.as_ref());
        for e in entries.into_iter().flatten() {
            match e.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("read") => read += u(e.value),
                Some("write") => write += u(e.value),
                _ => {}
            }
        }
        out.push(Stats {
            service: f.service.clone(),
            container: f.name.clone(),
            cpu_percent: (cpu_percent * 100.0).round() / 100.0,
            memory_used: used,
            memory_limit: limit,
            memory_percent: if limit > 0 {
                (used as f64 / limit as f64 * 10000.0).round() / 100.0
            } else {
                0.0
            },
            net_rx: rx,
            net_tx: tx,
            block_read: read,
            block_write: write,
            pids: u(s.pids_stats.as_ref().and_then(|p| p.current)),
        });
    }
    Ok(out)
}

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
        let streams = found.iter().map(|f| {
            let mut partial = String::new();
            docker
                .api
                .logs(&f.id, Some(options.clone()))
                .map(move |frame| frame.map(|o| frame_lines(f, o, &mut partial)))
                .boxed()
        });
        let mut merged = futures_util::stream::select_all(streams);
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
    let docker = target.docker().await?;
    let err = target.docker_err();
    let created = docker
        .api
        .create_exec(
            &f.id,
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
        container: f.name.clone(),
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
async fn exec_allowed(target: &Target, service: &str) -> Result<(), OpError> {
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

/// A running container of a service, found by its Compose labels.
#[derive(Debug, Clone)]
pub struct Running {
    pub id: String,
    pub name: String,
    pub image: String,
}

/// The service's first running container; an unknown service, a project without containers or
/// a service with none running is an error that says so.
pub async fn running(target: &Target, service: &str) -> Result<Running, OpError> {
    let found = find(target, Some(&[service.to_string()])).await?;
    found
        .into_iter()
        .find(|f| f.state == "running")
        .map(|f| Running {
            id: f.id,
            name: f.name,
            image: f.image,
        })
        .ok_or_else(|| {
            OpError::backend(
                target.docker_backend(),
                ErrorKind::Failed,
                format!(
                    "no running container of service `{service}` in the Compose project `{}`",
                    project(target)
                ),
            )
        })
}

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

/// The engine's inspect document of a service's first container (or of a named container).
pub async fn inspect(target: &Target, service: &str) -> Result<ContainerInspectResponse, OpError> {
    let found = find(target, Some(&[service.to_string()])).await?;
    let first = found
        .first()
        .expect("find returns at least one container for a known service");
    inspect_one(target, &first.id).await
}

#[derive(Debug, Serialize)]
pub struct Version {
    pub address: String,
    pub api_version: String,
    pub server_version: String,
    pub project: String,
}

pub async fn version(target: &Target) -> Result<Version, OpError> {
    let docker = target.docker().await?;
    let v = docker.api.version().await.map_err(target.docker_err())?;
    Ok(Version {
        address: target.docker_backend().address.clone(),
        api_version: docker.api_version.clone(),
        server_version: v.version.unwrap_or_default(),
        project: project(target),
    })
}

/// The project's services and how many containers each has.
pub async fn services(target: &Target) -> Result<BTreeMap<String, i64>, OpError> {
    let mut out = BTreeMap::new();
    for f in find(target, None).await? {
        *out.entry(f.service).or_insert(0) += 1;
    }
    Ok(out)
}

const SERVICES: Param = Param::optional(
    "services",
    Kind::Any,
    "a service (or container) name or an array of them; all of the project's when left out or ()",
);
const STOP_TIMEOUT: Opt = Opt::new(
    "timeout",
    Kind::Duration,
    Default::Setting(key::DOCKER_STOP_TIMEOUT.name()),
    "how long a container may take to stop after SIGTERM before it is killed",
);
static PS: Spec = Spec {
    module: "docker",
    name: "ps",
    params: &[SERVICES],
    options: &[],
    returns: "Array",
    doc: "The Compose project's containers (all states), by service: service, container, id, \
          state, status, health (() without a healthcheck), image, ports, uptime_seconds. An \
          empty project gives [] and a warning naming compose.project.",
    examples: &[Example::new(
        r#"docker::ps().map(|c| [c.service, c.state, c.health])"#,
        r#"[["data-processor", "running", "healthy"], ["stt-worker", "running", null], ["stt-worker", "running", null]]"#,
    )],
};

macro_rules! action_spec {
    ($ident:ident, $name:literal, $opts:expr, $doc:literal, $code:literal, $expect:literal) => {
        static $ident: Spec = Spec {
            module: "docker",
            name: $name,
            params: &[SERVICES],
            options: $opts,
            returns: "Map",
            doc: concat!($doc, " ", "See docker::pause for the result."),
            examples: &[Example::new($code, $expect)],
        };
    };
}

static PAUSE: Spec = Spec {
    module: "docker",
    name: "pause",
    params: &[SERVICES],
    options: &[],
    returns: "Map",
    doc: "Pauses the running containers (memory and state kept, no CPU), all at once. Returns \
          action, project, dry_run, changed, unchanged, failed and containers (each: service, \
          container, before, result, changed, error, seconds). A container already in the wanted \
          state is reported (e.g. \"already paused\"), not an error. With --dry-run nothing \
          changes and result says \"would …\".",
    examples: &[Example::new(
        r#"let p = docker::pause(); [p.changed, docker::ps().map(|c| c.state)]"#,
        r#"[3, ["paused", "paused", "paused"]]"#,
    )],
};
action_spec!(
    UNPAUSE,
    "unpause",
    &[],
    "Unpauses the paused containers, all at once.",
    r#"docker::pause("stt-worker"); let u = docker::unpause(); [u.changed, u.unchanged]"#,
    "[2, 1]"
);
action_spec!(
    STOP,
    "stop",
    &[STOP_TIMEOUT],
    "Stops the running (and paused) containers, all at once: SIGTERM, then SIGKILL after timeout.",
    r#"let s = docker::stop("stt-worker"); [s.changed, docker::ps().map(|c| c.state)]"#,
    r#"[2, ["running", "exited", "exited"]]"#
);
action_spec!(
    START,
    "start",
    &[],
    "Starts the stopped containers, all at once.",
    r#"docker::stop("stt-worker"); let s = docker::start(); [s.changed, s.unchanged]"#,
    "[2, 1]"
);
action_spec!(
    RESTART,
    "restart",
    &[STOP_TIMEOUT],
    "Restarts the containers, all at once.",
    r#"let r = docker::restart("stt-worker"); [r.changed, docker::ps("stt-worker").map(|c| c.state)]"#,
    r#"[2, ["running", "running"]]"#
);

static WAIT_READY: Spec = Spec {
    module: "docker",
    name: "wait_ready",
    params: &[SERVICES],
    options: &[
        Opt::new(
            "timeout",
            Kind::Duration,
            Default::Setting(key::SAFE_START_WAIT.name()),
            "give up after this long",
        ),
        Opt::new(
            "poll",
            Kind::Duration,
            Default::Value("1s"),
            "how often to look",
        ),
    ],
    returns: "Map",
    doc: "Waits until every container runs and, where it has a healthcheck, is healthy. Returns \
          ready, waited_seconds and not_ready (as docker::ps rows).",
    examples: &[Example::new(
        r#"docker::stop("stt-worker"); let w = docker::wait_ready(#{timeout: "1s", poll: "200ms"}); [w.ready, w.not_ready.map(|c| c.service)]"#,
        r#"[false, ["stt-worker", "stt-worker"]]"#,
    )],
};

static STATS: Spec = Spec {
    module: "docker",
    name: "stats",
    params: &[SERVICES],
    options: &[],
    returns: "Array",
    doc: "One sample of each running container (docker stats --no-stream): service, container, \
          cpu_percent, memory_used, memory_limit (bytes), memory_percent, net_rx, net_tx, \
          block_read, block_write (bytes), pids. Takes about a second (the engine samples twice).",
    examples: &[Example::new(
        "docker::stats().map(|s| [s.service, s.memory_used > 0, s.memory_limit >= s.memory_used])",
        r#"[["data-processor", true, true], ["stt-worker", true, true], ["stt-worker", true, true]]"#,
    )],
};

static LOGS: Spec = Spec {
    module: "docker",
    name: "logs",
    params: &[SERVICES],
    options: &[
        Opt::new(
            "tail",
            Kind::Int,
            Default::None,
            "only the last N lines of each container (default all)",
        ),
        Opt::new(
            "since",
            Kind::Duration,
            Default::None,
            "only lines of the last duration",
        ),
        Opt::new(
            "grep",
            Kind::Str,
            Default::None,
            "only lines matching this regular expression (e.g. \"ERROR|CRITICAL|FATAL\")",
        ),
        Opt::new(
            "follow",
            Kind::Bool,
            Default::Value("false"),
            "stream new lines to stdout until the containers stop or Ctrl-C",
        ),
    ],
    returns: "Map",
    doc: "Container logs: lines (each service, container, stream, time, text; oldest first across \
          containers), count, followed. With follow the lines go to stdout as `container | text` \
          and lines stays empty.",
    examples: &[Example::new(
        r#"docker::logs("data-processor", #{tail: 10, grep: "ERROR"}).lines.map(|l| l.text)"#,
        r#"["ERROR cannot reach whisper-server"]"#,
    )],
};

static EXEC: Spec = Spec {
    module: "docker",
    name: "exec",
    params: &[
        Param::new("service", Kind::Str, "the service (or container) name"),
        Param::new(
            "cmd",
            Kind::Any,
            "a string (run by sh -c) or an array (the argv)",
        ),
    ],
    options: &[],
    returns: "Map",
    doc: "Runs a command in the service's first running container: container, exit_code, output \
          (stdout and stderr as they came), stdout, stderr. Scripts get no shell unless the \
          configuration allows it: only in the services listed in docker.allow_exec (\"*\" for \
          all; none by default), otherwise an error of kind refused naming the setting.",
    examples: &[Example::new(
        r#"let k = (); try { docker::exec("postgres", "true") } catch (e) { k = e.kind } k"#,
        r#""refused""#,
    )],
};

static INSPECT: Spec = Spec {
    module: "docker",
    name: "inspect",
    params: &[Param::new(
        "service",
        Kind::Str,
        "the service (or container) name",
    )],
    options: &[],
    returns: "Map",
    doc: "The engine's inspect document (docker inspect) of the service's first container.",
    examples: &[
        Example::new(
            r#"let i = docker::inspect("data-processor"); [i.State.Status, i.State.Health.Status]"#,
            r#"["running", "healthy"]"#,
        ),
        Example::new(
            r#"let k = (); try { docker::inspect("no-such-service") } catch (e) { k = e.kind } k"#,
            r#""not_found""#,
        ),
    ],
};

static VERSION: Spec = Spec {
    module: "docker",
    name: "version",
    params: &[],
    options: &[],
    returns: "Map",
    doc: "The engine opsh talks to: address (DOCKER_HOST), api_version (negotiated), \
          server_version, and the Compose project it looks for.",
    examples: &[Example::new(
        r#"let v = docker::version(); [v.project == env("COMPOSE_PROJECT_NAME"), v.server_version == env("EXAMPLES_DOCKER_VERSION")]"#,
        "[true, true]",
    )],
};

static SERVICES_SPEC: Spec = Spec {
    module: "docker",
    name: "services",
    params: &[],
    options: &[],
    returns: "Map",
    doc: "The project's services (those with a container) and how many containers each has.",
    examples: &[Example::new(
        r#"docker::services()"#,
        r#"{"data-processor": 1, "stt-worker": 2}"#,
    )],
};

/// The services argument: a name, an array of names, or () / left out for all.
fn services_arg(c: &crate::ops::spec::Call) -> Result<Option<Vec<String>>, OpError> {
    let Some(v) = c.value("services") else {
        return Ok(None);
    };
    if v.is_unit() {
        return Ok(None);
    }
    match Kind::Strings.convert(v) {
        Ok(list) => Ok(Some(
            list.into_array()
                .unwrap_or_default()
                .into_iter()
                .map(|s| s.to_string())
                .collect(),
        )),
        Err(why) => Err(OpError::invalid(format!("`services`: {why}"))),
    }
}

pub fn register(reg: &mut Registrar) {
    reg.add(&PS, |c| {
        let s = services_arg(c)?;
        c.block(ps(c.target, s.as_deref()))
    });
    let actions: [(&'static Spec, Action); 5] = [
        (&PAUSE, Action::Pause),
        (&UNPAUSE, Action::Unpause),
        (&STOP, Action::Stop),
        (&START, Action::Start),
        (&RESTART, Action::Restart),
    ];
    for (spec, action) in actions {
        reg.add(spec, move |c| {
            let s = services_arg(c)?;
            let timeout = match action {
                Action::Stop | Action::Restart => c.opt_duration("timeout")?,
                _ => None,
            };
            c.block(act(c.target, action, s.as_deref(), timeout))
        });
    }
    reg.add(&WAIT_READY, |c| {
        let s = services_arg(c)?;
        let timeout = c.duration("timeout")?;
        let poll = c.duration("poll")?.max(Duration::from_millis(50));
        c.block(wait_ready(c.target, s.as_deref(), timeout, poll))
    });
    reg.add(&STATS, |c| {
        let s = services_arg(c)?;
        c.block(stats(c.target, s.as_deref()))
    });
    reg.add(&LOGS, |c| {
        let s = services_arg(c)?;
        let grep = match c.opt_str("grep")? {
            Some(g) => Some(regex::Regex::new(&g).map_err(|e| {
                OpError::invalid(format!("option `grep`: not a regular expression: {e}"))
            })?),
            None => None,
        };
        let req = LogRequest {
            tail: c.opt_int("tail")?,
            since: c.opt_duration("since")?,
            grep,
            follow: c.bool("follow")?,
        };
        c.block(logs(c.target, s.as_deref(), &req))
    });
    reg.add(&EXEC, |c| {
        let service = c.str("service")?;
        let cmd = c.any("cmd")?;
        let argv: Vec<String> = if cmd.is_string() {
            vec!["sh".into(), "-c".into(), cmd.to_string()]
        } else if let Some(items) = cmd.clone().try_cast::<rhai::Array>() {
            items.into_iter().map(|v| v.to_string()).collect()
        } else {
            return Err(OpError::invalid("`cmd`: expected a string or an array of strings").into());
        };
        if argv.is_empty() {
            return Err(OpError::invalid("`cmd`: the command is empty").into());
        }
        c.block(async {
            exec_allowed(c.target, &service).await?;
            exec(c.target, &service, argv).await
        })
    });
    reg.add(&INSPECT, |c| {
        let service = c.str("service")?;
        c.block(inspect(c.target, &service))
    });
    reg.add(&VERSION, |c| c.block(version(c.target)));
    reg.add(&SERVICES_SPEC, |c| c.block(services(c.target)));
}
