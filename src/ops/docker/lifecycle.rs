//! pause, unpause, stop, start, restart: on all the chosen containers at once, idempotent (a
//! container already in the wanted state is reported as such), through the destructive path.

use std::time::{Duration, Instant};

use bollard::query_parameters::{
    RestartContainerOptions, StartContainerOptions, StopContainerOptions,
};
use futures_util::future::join_all;
use serde::Serialize;

use super::containers::{find, project};
use crate::ops::Target;
use crate::ops::destructive::{Change, Confirm, done, proceed};
use crate::ops::error::OpError;

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
