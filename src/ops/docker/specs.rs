//! The specs (docs and examples) of the `docker::` functions; [`super::register`] binds them.

use crate::config::key;
use crate::ops::spec::{Default, Example, Kind, Opt, Param, Spec};

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
pub(super) static PS: Spec = Spec {
    module: "docker",
    name: "ps",
    params: &[SERVICES],
    options: &[],
    returns: "Array",
    doc: "The Compose project's containers (all states), by service: service, container, id, \
          state, status, health (() without a healthcheck), image, ports, uptime_seconds, \
          restarts. An empty project gives [] and a warning naming compose.project.",
    examples: &[Example::new(
        r#"docker::ps().map(|c| [c.service, c.state, c.health])"#,
        r#"[["data-processor", "running", "healthy"], ["stt-worker", "running", null], ["stt-worker", "running", null]]"#,
    )],
};

macro_rules! action_spec {
    ($ident:ident, $name:literal, $opts:expr, $doc:literal, $code:literal, $expect:literal) => {
        pub(super) static $ident: Spec = Spec {
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

pub(super) static PAUSE: Spec = Spec {
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

pub(super) static WAIT_READY: Spec = Spec {
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

pub(super) static STATS: Spec = Spec {
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

pub(super) static LOGS: Spec = Spec {
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

pub(super) static EXEC: Spec = Spec {
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

pub(super) static INSPECT: Spec = Spec {
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

pub(super) static VERSION: Spec = Spec {
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

pub(super) static SERVICES_SPEC: Spec = Spec {
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
