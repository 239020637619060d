//! The few globals every script has: `log::`, sleep, env, now, duration, fmt_duration, confirm,
//! dry_run.

use std::io::{BufRead, IsTerminal, Write};
use std::rc::Rc;

use rhai::{Dynamic, Engine, EvalAltResult, Module, NativeCallContext, Position};

use crate::ops::Target;
use crate::ops::support::{Refusal, RhaiResult, at, duration_of, func, global_func, stopped};

/// Set by `exit(n)`: Rhai turns a top-level exit into the script's value, so the host needs
/// its own note that the script asked to exit.
#[derive(Clone, Default)]
pub struct ExitRequest(Rc<std::cell::RefCell<Option<Dynamic>>>);

impl ExitRequest {
    pub fn take(&self) -> Option<Dynamic> {
        self.0.borrow_mut().take()
    }
}

pub fn register(engine: &mut Engine, target: &Rc<Target>, exit: &ExitRequest) {
    engine.register_static_module("log", log_module().into());

    for (params, doc) in [
        (
            &["()"][..],
            "Ends the script with exit code 0.\n```rhai\nif false { exit() }\n```",
        ),
        (
            &["value: Dynamic", "()"][..],
            "Ends the script: with an integer, that exit code (0 ok, 1 warning, 2 critical, 3 unknown); with a report, its status.\n```rhai\nif false { exit(2) }\n```",
        ),
    ] {
        let request = exit.clone();
        let registration = global_func("exit", params, doc);
        if params.len() == 1 {
            registration.register_into_engine(engine, move || -> RhaiResult<()> {
                *request.0.borrow_mut() = Some(Dynamic::from_int(0));
                Err(EvalAltResult::Exit(Dynamic::UNIT, Position::NONE).into())
            });
        } else {
            registration.register_into_engine(engine, move |value: Dynamic| -> RhaiResult<()> {
                *request.0.borrow_mut() = Some(value.clone());
                Err(EvalAltResult::Exit(value, Position::NONE).into())
            });
        }
    }

    // Rhai's own sleep(seconds) blocks the thread where no Ctrl-C reaches it; these typed
    // overloads shadow it (a Dynamic one would lose to its exact INT and FLOAT matches).
    fn sleep_for(ctx: &NativeCallContext, t: &Target, d: Dynamic) -> RhaiResult<()> {
        let d = duration_of(&d).map_err(|e| at(ctx, runtime(format!("sleep: {e}"))))?;
        t.bridge.sleep(d).map_err(stopped)
    }
    let doc = "Waits for a duration (\"30s\", \"10m\" or seconds); Ctrl-C and --timeout end the wait.\n```rhai\nsleep(\"10ms\"); sleep(0); sleep(0.01)\n```";
    let t = target.clone();
    global_func("sleep", &["duration: &str", "()"], doc).register_into_engine(
        engine,
        move |ctx: NativeCallContext, d: rhai::ImmutableString| sleep_for(&ctx, &t, d.into()),
    );
    let t = target.clone();
    global_func("sleep", &["seconds: i64", "()"], doc)
        .register_into_engine(engine, move |ctx: NativeCallContext, d: i64| {
            sleep_for(&ctx, &t, d.into())
        });
    let t = target.clone();
    global_func("sleep", &["seconds: f64", "()"], doc)
        .register_into_engine(engine, move |ctx: NativeCallContext, d: f64| {
            sleep_for(&ctx, &t, d.into())
        });

    global_func(
        "env",
        &["name: &str", "Dynamic"],
        "The value of an environment variable, or () when it is unset.\n```rhai\ntype_of(env(\"PATH\")) == \"string\" && env(\"OPSH_SURELY_UNSET_VARIABLE\") == ()\n```",
    )
    .register_into_engine(engine, |name: &str| -> Dynamic {
        std::env::var(name).map(Dynamic::from).unwrap_or(Dynamic::UNIT)
    });

    global_func(
        "now",
        &["String"],
        "The current time in UTC as RFC 3339 text, e.g. \"2026-11-26T02:00:00Z\".\n```rhai\nnow().ends_with(\"Z\")\n```",
    )
    .register_into_engine(engine, || -> String {
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    });

    global_func(
        "duration",
        &["text: Dynamic", "i64"],
        "Parses a duration (\"30s\", \"10m\", \"1h\", \"1d\" or seconds) into whole seconds.\n```rhai\nduration(\"1h\") == 3600 && duration(\"1d\") == 86400 && duration(90) == 90\n```",
    )
    .register_into_engine(engine, |ctx: NativeCallContext, d: Dynamic| -> RhaiResult<i64> {
        let d = duration_of(&d).map_err(|e| at(&ctx, runtime(format!("duration: {e}"))))?;
        Ok(d.as_secs() as i64)
    });

    global_func(
        "fmt_duration",
        &["seconds: i64", "String"],
        "Formats seconds the way durations are written: 5400 → \"1h 30m\".\n```rhai\nfmt_duration(5400) == \"1h 30m\"\n```",
    )
    .register_into_engine(engine, |secs: i64| -> String {
        crate::duration::format(std::time::Duration::from_secs(secs.max(0) as u64))
    });

    let t = target.clone();
    global_func(
        "dry_run",
        &["bool"],
        "True when opsh runs with --dry-run: destructive steps only report what they would do.\n```rhai\ntype_of(dry_run()) == \"bool\"\n```",
    )
    .register_into_engine(engine, move || t.flags.dry_run);

    let t = target.clone();
    global_func(
        "confirm",
        &["prompt: &str", "expected_answer: &str", "bool"],
        "Asks the operator to type `expected_answer` on the terminal; --yes answers for them. \
Without a terminal and without --yes it refuses: the script ends with exit 3 and a message \
saying to pass --yes. A wrong answer refuses too.\n```rhai\nconfirm(\"Reset all stuck jobs?\", \"yes\")   // the example runs with --yes\n```",
    )
    .register_into_engine(engine, move |prompt: &str, expected: &str| -> RhaiResult<bool> {
        confirm(&t, prompt, expected)
    });
}

fn log_module() -> Module {
    let mut m = Module::new();
    func(
        "info",
        &["message: &str", "()"],
        "Logs to stderr at info level.\n```rhai\nlog::info(\"starting the check\")\n```",
    )
    .set_into_module(&mut m, |msg: &str| tracing::info!("{msg}"));
    func(
        "warn",
        &["message: &str", "()"],
        "Logs to stderr at warning level.\n```rhai\nlog::warn(\"2 stuck jobs\")\n```",
    )
    .set_into_module(&mut m, |msg: &str| tracing::warn!("{msg}"));
    func(
        "error",
        &["message: &str", "()"],
        "Logs to stderr at error level.\n```rhai\nlog::error(\"qdrant unreachable\")\n```",
    )
    .set_into_module(&mut m, |msg: &str| tracing::error!("{msg}"));
    m
}

fn runtime(message: String) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(message.into(), Position::NONE).into()
}

fn refuse(message: String) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(Dynamic::from(Refusal(message)), Position::NONE).into()
}

fn confirm(target: &Target, prompt: &str, expected: &str) -> RhaiResult<bool> {
    if target.flags.yes {
        tracing::info!("{prompt} (confirmed by --yes)");
        return Ok(true);
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(refuse(format!(
            "`{prompt}` needs confirmation and there is no terminal to ask on; pass --yes to confirm unattended"
        )));
    }
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "{prompt}\nType `{expected}` to continue: ");
    let _ = stderr.flush();
    let mut answer = String::new();
    // Reading a line blocks Ctrl-C's cancellation; the second press still exits.
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| runtime(format!("confirm: {e}")))?;
    if answer.trim() == expected {
        Ok(true)
    } else {
        Err(refuse(format!(
            "not confirmed: the answer was not `{expected}`"
        )))
    }
}
