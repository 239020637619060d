//! `docker::` — the stack's containers through the Docker Engine API: found by their Compose
//! labels (com.docker.compose.project = compose.project, oneoff False), so Compose v1
//! (`project_service_1`) and v2 (`project-service-1`) containers are the same to opsh.
//!
//! Actions (pause, unpause, stop, start, restart) run on all their containers at once and are
//! idempotent: a container already in the wanted state is reported as such, not as an error.
//!
//! One concept per file: [`containers`] (finding the project's containers, ps, inspect,
//! services, version), [`lifecycle`] (the actions), [`health`] (wait_ready), [`stats`], [`logs`],
//! [`exec`] (the script-facing exec and its allow-list), [`stream`] (opsh's own streamed exec
//! and copy-out), [`temp`] (the workers' temp dirs in their containers), [`specs`]; this file registers them.

mod containers;
mod exec;
mod health;
mod lifecycle;
mod logs;
mod specs;
mod stats;
mod stream;
mod temp;

use std::time::Duration;

pub use containers::{
    Ps, Running, Version, inspect, project_label, ps, running, services, version,
};
pub use exec::{Exec, exec};
pub use health::{Ready, wait_ready};
pub use lifecycle::{Acted, Action, Acts, act};
pub use logs::{LogLine, LogRequest, Logs, follow_service, logs};
pub use stats::{Stats, stats};
pub use stream::{Input, Streamed, copy_out, exec_stream, guarded};
pub use temp::{Place, in_containers};

use crate::ops::error::OpError;
use crate::ops::spec::{Kind, Registrar, Spec};
use specs::*;

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
            exec::exec_allowed(c.target, &service).await?;
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
