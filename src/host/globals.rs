//! The few globals every script has: `log::`, exit, sleep, env, now, duration, and the words of
//! report lines (fmt_duration, plural, fmt_size, from crate::text), confirm, dry_run.

use std::rc::Rc;

use rhai::{Dynamic, Engine, EvalAltResult, NativeCallContext, Position};

use crate::ops::Target;
use crate::ops::destructive;
use crate::ops::error::OpError;
use crate::ops::spec::{Example, Failure, Kind, Param, Registrar, Spec, duration_of};

/// Set by `exit(n)`: Rhai turns a top-level exit into the script's value, so the host needs
/// its own note that the script asked to exit.
#[derive(Clone, Default)]
pub struct ExitRequest(Rc<std::cell::RefCell<Option<Dynamic>>>);

impl ExitRequest {
    pub fn take(&self) -> Option<Dynamic> {
        self.0.borrow_mut().take()
    }
}

static EXIT: Spec = Spec::global(
    "exit",
    &[Param::optional(
        "value",
        Kind::Any,
        "an exit code (0 ok, 1 warning, 2 critical, 3 unknown) or a report (its status decides)",
    )],
    "()",
    "Ends the script: with nothing, exit code 0; with an integer, that exit code; with a report, \
     its status.",
    &[Example::new("exit(2); 5", r#"{"exit_code": 2}"#)],
);

static SLEEP: Spec = Spec::global(
    "sleep",
    &[Param::new(
        "duration",
        Kind::Duration,
        "\"30s\", \"10m\" or seconds",
    )],
    "()",
    "Waits; Ctrl-C and --timeout end the wait (Rhai's own sleep would block them).",
    &[Example::new(
        r#"sleep("10ms"); sleep(0); sleep(0.01); 1"#,
        "1",
    )],
);

static ENV: Spec = Spec::global(
    "env",
    &[Param::new("name", Kind::Str, "the variable's name")],
    "Dynamic",
    "The value of an environment variable, or () when it is unset.",
    &[Example::new(
        r#"[env("EXAMPLES_GREETING"), env("OPSH_SURELY_UNSET_VARIABLE")]"#,
        r#"["set by the examples test", null]"#,
    )],
);

static NOW: Spec = Spec::global(
    "now",
    &[],
    "String",
    "The current time in UTC as RFC 3339 text, e.g. \"2026-11-26T02:00:00Z\".",
    &[Example::new(
        r#"let t = now(); [t.len(), t.ends_with("Z")]"#,
        "[20, true]",
    )],
);

static DURATION: Spec = Spec::global(
    "duration",
    &[Param::new(
        "text",
        Kind::Duration,
        "\"30s\", \"10m\", \"1h\", \"1d\" or seconds",
    )],
    "i64",
    "Parses a duration into whole seconds.",
    &[Example::new(
        r#"[duration("1h"), duration("1d"), duration(90)]"#,
        "[3600, 86400, 90]",
    )],
);

static FMT_DURATION: Spec = Spec::global(
    "fmt_duration",
    &[Param::new(
        "duration",
        Kind::Duration,
        "seconds (whole or measured, e.g. 0.8) or a duration such as \"1d\"",
    )],
    "String",
    "A duration in words for a report line: days, hours, minutes and seconds, tenths of a \
     second below a minute, ms below a second.",
    &[Example::new(
        r#"[fmt_duration(5400), fmt_duration(1.24), fmt_duration("1d"), fmt_duration(0.35)]"#,
        r#"["1 hour 30 minutes", "1.2 seconds", "1 day", "350 ms"]"#,
    )],
);

static PLURAL: Spec = Spec::global(
    "plural",
    &[
        Param::new("n", Kind::Int, "the count"),
        Param::new("singular", Kind::Str, "the noun (phrase) for one"),
        Param::optional(
            "plural",
            Kind::Str,
            "the form for other counts, when adding -s/-es/-ies to the last word is wrong",
        ),
    ],
    "String",
    "A count with its noun in the right number, for a report line.",
    &[Example::new(
        r#"[plural(1, "content item"), plural(3, "entry"), plural(2, "job was", "jobs were")]"#,
        r#"["1 content item", "3 entries", "2 jobs were"]"#,
    )],
);

static FMT_SIZE: Spec = Spec::global(
    "fmt_size",
    &[Param::new("bytes", Kind::Float, "a size in bytes")],
    "String",
    "A size for a report line: bytes below 1 KiB, else KiB, MiB, GiB… with one decimal.",
    &[Example::new(
        "[fmt_size(512), fmt_size(901248), fmt_size(1572864)]",
        r#"["512 B", "880.1 KiB", "1.5 MiB"]"#,
    )],
);

static DRY_RUN: Spec = Spec::global(
    "dry_run",
    &[],
    "bool",
    "True when opsh runs with --dry-run: destructive steps only report what they would do.",
    &[Example::new("dry_run()", "false")],
);

static CONFIRM: Spec = Spec::global(
    "confirm",
    &[
        Param::new("prompt", Kind::Str, "the question"),
        Param::new("expected_answer", Kind::Str, "what the operator must type"),
    ],
    "bool",
    "Asks the operator to type expected_answer on the terminal; --yes answers for them. Without \
     a terminal and without --yes it refuses: the script ends with exit 3 and a message saying to \
     pass --yes. A wrong answer refuses too.",
    &[Example::new(
        r#"confirm("Reset all stuck jobs?", "yes")"#,
        "true",
    )],
);

const MESSAGE: &[Param] = &[Param::new("message", Kind::Str, "the text")];

static LOG_INFO: Spec = Spec {
    module: "log",
    ..Spec::global(
        "info",
        MESSAGE,
        "()",
        "Logs to stderr at info level.",
        &[Example::new(r#"log::info("starting the check")"#, "null")],
    )
};
static LOG_WARN: Spec = Spec {
    module: "log",
    ..Spec::global(
        "warn",
        MESSAGE,
        "()",
        "Logs to stderr at warning level.",
        &[Example::new(r#"log::warn("2 stuck jobs")"#, "null")],
    )
};
static LOG_ERROR: Spec = Spec {
    module: "log",
    ..Spec::global(
        "error",
        MESSAGE,
        "()",
        "Logs to stderr at error level.",
        &[Example::new(r#"log::error("qdrant unreachable")"#, "null")],
    )
};

pub fn register(
    engine: &mut Engine,
    target: &Rc<Target>,
    exit: &ExitRequest,
    specs: &mut Vec<&'static Spec>,
) {
    let mut log = Registrar::new(target, specs);
    log.add(&LOG_INFO, |c| {
        tracing::info!("{}", c.str("message")?);
        Ok(())
    });
    log.add(&LOG_WARN, |c| {
        tracing::warn!("{}", c.str("message")?);
        Ok(())
    });
    log.add(&LOG_ERROR, |c| {
        tracing::error!("{}", c.str("message")?);
        Ok(())
    });
    engine.register_static_module("log", log.finish().into());

    let mut reg = Registrar::new(target, specs);
    // exit needs to end the script with Rhai's own Exit, so it is registered typed.
    let request = exit.clone();
    reg.typed(&EXIT, &["()"]).set_into_module(
        reg.module(),
        move || -> Result<(), Box<EvalAltResult>> {
            *request.0.borrow_mut() = Some(Dynamic::from_int(0));
            Err(EvalAltResult::Exit(Dynamic::UNIT, Position::NONE).into())
        },
    );
    let request = exit.clone();
    reg.typed(&EXIT, &["value: Dynamic", "()"]).set_into_module(
        reg.module(),
        move |value: Dynamic| -> Result<(), Box<EvalAltResult>> {
            *request.0.borrow_mut() = Some(value.clone());
            Err(EvalAltResult::Exit(value, Position::NONE).into())
        },
    );

    // Rhai's own sleep(seconds) blocks the thread where no Ctrl-C reaches it; these typed
    // overloads shadow it (a Dynamic one would lose to its exact INT and FLOAT matches).
    fn sleep_for(
        ctx: &NativeCallContext,
        t: &Target,
        d: Dynamic,
    ) -> Result<(), Box<EvalAltResult>> {
        let d =
            duration_of(&d).map_err(|e| Failure::Op(OpError::invalid(e)).into_eval(ctx, &SLEEP))?;
        t.bridge
            .sleep(d)
            .map_err(|stop| Failure::Stop(stop).into_eval(ctx, &SLEEP))
    }
    let t = target.clone();
    reg.typed(&SLEEP, &["duration: &str", "()"])
        .set_into_module(
            reg.module(),
            move |ctx: NativeCallContext, d: rhai::ImmutableString| sleep_for(&ctx, &t, d.into()),
        );
    let t = target.clone();
    reg.typed(&SLEEP, &["seconds: i64", "()"])
        .set_into_module(reg.module(), move |ctx: NativeCallContext, d: i64| {
            sleep_for(&ctx, &t, d.into())
        });
    let t = target.clone();
    reg.typed(&SLEEP, &["seconds: f64", "()"])
        .set_into_module(reg.module(), move |ctx: NativeCallContext, d: f64| {
            sleep_for(&ctx, &t, d.into())
        });

    reg.add(&ENV, |c| {
        let name = c.str("name")?;
        match std::env::var(&name) {
            Ok(value) => Ok(Some(value)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(OpError::invalid(format!("variable {name} is not valid UTF-8")).into())
            }
        }
    });
    reg.add(&NOW, |_| {
        Ok(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    });
    reg.add(&DURATION, |c| Ok(c.duration("text")?.as_secs() as i64));
    reg.add(&FMT_DURATION, |c| {
        Ok(crate::text::duration(c.duration("duration")?))
    });
    reg.add(&PLURAL, |c| {
        Ok(crate::text::count(
            c.int("n")?,
            &c.str("singular")?,
            c.opt_str("plural")?.as_deref(),
        ))
    });
    reg.add(&FMT_SIZE, |c| {
        let bytes = c.opt_float("bytes")?.unwrap_or(0.0);
        Ok(crate::text::size(bytes.max(0.0) as u64))
    });
    reg.add(&DRY_RUN, |c| Ok(c.target.flags.dry_run));
    reg.add(&CONFIRM, |c| {
        destructive::ask(c.target, &c.str("prompt")?, &c.str("expected_answer")?)?;
        Ok(true)
    });
    engine.register_global_module(reg.finish().into());
    // `${list}` in a report line, print(list) and list.to_string(): words, not Rhai's
    // `["a", "b"]` (to_debug keeps Rhai's form for a script author's own debugging).
    engine
        .register_fn("to_string", |a: &mut rhai::Array| {
            crate::text::listed(&Dynamic::from_array(a.clone()))
        })
        .register_fn("to_string", |m: &mut rhai::Map| {
            crate::text::listed(&Dynamic::from_map(m.clone()))
        });
}
