//! `report::` — the Rhai face of crate::report.

use std::rc::Rc;

use rhai::{Dynamic, Engine, NativeCallContext};

use crate::ops::Target;
use crate::ops::error::OpError;
use crate::ops::spec::{Example, Failure, Kind, Param, Registrar, Spec};
use crate::report::{Report, Status};

static NEW: Spec = Spec {
    module: "report",
    name: "new",
    params: &[Param::new("title", Kind::Str, "what the report is about")],
    options: &[],
    returns: "Report",
    doc: "A new report; add checks and issues, then end the script with it: its worst status is \
          the exit code (0 ok, 1 warning, 2 critical).",
    examples: &[Example::new(
        r#"let r = report::new("Jobs"); r.ok("database", "connected"); r.status"#,
        r#""ok""#,
    )],
};

const REPORT: Param = Param::new("report", Kind::Report, "the report");
const NAME: Param = Param::new("name", Kind::Str, "what was checked");
const DETAIL: Param = Param::new("detail", Kind::Str, "what was found");

static OK: Spec = Spec::global(
    "ok",
    &[REPORT, NAME, DETAIL],
    "()",
    "Adds a check that passed.",
    &[Example::new(
        r#"let r = report::new("t"); r.ok("database", "up"); [r.status, r.checks.len()]"#,
        r#"["ok", 1]"#,
    )],
);
static WARN: Spec = Spec::global(
    "warn",
    &[REPORT, NAME, DETAIL],
    "()",
    "Adds a check that found a warning.",
    &[Example::new(
        r#"let r = report::new("t"); r.warn("jobs", "3 stuck"); r.status"#,
        r#""warning""#,
    )],
);
static CRITICAL: Spec = Spec::global(
    "critical",
    &[REPORT, NAME, DETAIL],
    "()",
    "Adds a check that found a critical problem.",
    &[Example::new(
        r#"let r = report::new("t"); r.critical("qdrant", "down"); r.warn("jobs", "3"); r.status"#,
        r#""critical""#,
    )],
);
static UNKNOWN: Spec = Spec::global(
    "unknown",
    &[REPORT, NAME, DETAIL],
    "()",
    "Adds a check that could not decide.",
    &[Example::new(
        r#"let r = report::new("t"); r.unknown("disk", "no answer"); r.status"#,
        r#""unknown""#,
    )],
);
static CHECK: Spec = Spec::global(
    "check",
    &[
        REPORT,
        NAME,
        Param::new("status", Kind::Str, "ok, warning, critical or unknown"),
        DETAIL,
    ],
    "()",
    "Adds a check with a status given as text.",
    &[Example::new(
        r#"let r = report::new("t"); r.check("jobs", "warning", "3 stuck"); r.checks[0]"#,
        r#"{"detail": "3 stuck", "name": "jobs", "status": "warning"}"#,
    )],
);
static ISSUE: Spec = Spec::global(
    "issue",
    &[
        REPORT,
        Param::new(
            "text",
            Kind::Str,
            "the problem, in words an operator can act on",
        ),
    ],
    "()",
    "Records a problem found.",
    &[Example::new(
        r#"let r = report::new("t"); r.issue("3 jobs stuck for more than 1h"); r.issues"#,
        r#"["3 jobs stuck for more than 1h"]"#,
    )],
);
static DATA: Spec = Spec::global(
    "data",
    &[
        REPORT,
        Param::new("key", Kind::Str, "the field name"),
        Param::new("value", Kind::Any, "any value"),
    ],
    "()",
    "Attaches a machine-readable value (shown in --json output).",
    &[Example::new(
        r#"let r = report::new("t"); r.data("stuck", 3); r.status"#,
        r#""ok""#,
    )],
);
static METRIC: Spec = Spec::global(
    "metric",
    &[
        REPORT,
        Param::new(
            "name",
            Kind::Str,
            "snake_case, the unit as a suffix (`_seconds`, `_bytes`), no `_total`; opsh_ is added",
        ),
        Param::new("value", Kind::Any, "a number (or a bool: 1 or 0)"),
        Param::new(
            "help",
            Kind::Str,
            "what it measures, one sentence (Prometheus' HELP)",
        ),
        Param::optional(
            "labels",
            Kind::Map,
            "what varies, as labels (#{type: \"vectorize\", status: \"pending\"}); procedure and target are added",
        ),
    ],
    "()",
    "Attaches a figure for `--format prometheus` (as opsh_<name>) and Nagios performance data. \
     The name stays the same from run to run; whatever varies (a job type, a collection) goes \
     into labels. The same name and labels again replaces the value.",
    &[Example::new(
        r#"let r = report::new("t"); r.metric("jobs", 3, "Jobs by status.", #{status: "pending"}); r.metrics[0].labels"#,
        r#"{"status": "pending"}"#,
    )],
);
static METRICS: Spec = Spec::global(
    "metrics",
    &[REPORT],
    "Array",
    "The metrics so far, as maps with name, help, labels and value (a property).",
    &[Example::new(
        r#"let r = report::new("t"); r.metric("jobs_stuck", 2, "Stuck jobs."); r.metrics[0].value"#,
        "2.0",
    )],
);
static STATUS: Spec = Spec::global(
    "status",
    &[REPORT],
    "String",
    "The worst status so far (a property: r.status).",
    &[Example::new(r#"report::new("t").status"#, r#""ok""#)],
);
static CHECKS: Spec = Spec::global(
    "checks",
    &[REPORT],
    "Array",
    "The checks so far, as maps with name, status and detail (a property).",
    &[Example::new(r#"report::new("t").checks"#, "[]")],
);
static ISSUES: Spec = Spec::global(
    "issues",
    &[REPORT],
    "Array",
    "The issues recorded so far (a property).",
    &[Example::new(r#"report::new("t").issues"#, "[]")],
);
static TO_STRING: Spec = Spec::global(
    "to_string",
    &[REPORT],
    "String",
    "The report as text.",
    &[Example::new(
        r#"report::new("Jobs").to_string().contains("Jobs")"#,
        "true",
    )],
);

pub fn register(engine: &mut Engine, target: &Rc<Target>, specs: &mut Vec<&'static Spec>) {
    engine.register_type_with_name::<Report>("Report");
    let mut reg = Registrar::new(target, specs);
    reg.add(&NEW, |c| Ok(Dynamic::from(Report::new(&c.str("title")?))));
    let check_params = &["report: Report", "name: &str", "detail: &str", "()"];
    for (spec, status) in [
        (&OK, Status::Ok),
        (&WARN, Status::Warning),
        (&CRITICAL, Status::Critical),
        (&UNKNOWN, Status::Unknown),
    ] {
        reg.typed(spec, check_params).set_into_module(
            reg.module(),
            move |r: &mut Report, check: &str, detail: Dynamic| {
                r.check(check, status, &text_of(&detail))
            },
        );
    }
    reg.typed(
        &CHECK,
        &[
            "report: Report",
            "name: &str",
            "status: &str",
            "detail: &str",
            "()",
        ],
    )
    .set_into_module(
        reg.module(),
        |ctx: NativeCallContext,
         r: &mut Report,
         check: &str,
         status: &str,
         detail: Dynamic|
         -> Result<(), Box<rhai::EvalAltResult>> {
            let status = Status::parse(status).ok_or_else(|| {
                Failure::Op(OpError::invalid(format!(
                    "status `{status}` is not one of ok, warning, critical, unknown"
                )))
                .into_eval(&ctx, &CHECK)
            })?;
            r.check(check, status, &text_of(&detail));
            Ok(())
        },
    );
    reg.typed(&ISSUE, &["report: Report", "text: &str", "()"])
        .set_into_module(reg.module(), |r: &mut Report, text: Dynamic| {
            r.issue(&text_of(&text))
        });
    reg.typed(
        &DATA,
        &["report: Report", "key: &str", "value: Dynamic", "()"],
    )
    .set_into_module(
        reg.module(),
        |ctx: NativeCallContext,
         r: &mut Report,
         key: &str,
         value: Dynamic|
         -> Result<(), Box<rhai::EvalAltResult>> {
            let json = serde_json::to_value(&value)
                .map_err(|e| Failure::Op(OpError::invalid(e.to_string())).into_eval(&ctx, &DATA))?;
            r.set_data(key, json);
            Ok(())
        },
    );
    let metric = |ctx: NativeCallContext,
                  r: &mut Report,
                  name: &str,
                  value: Dynamic,
                  help: &str,
                  labels: rhai::Map|
     -> Result<(), Box<rhai::EvalAltResult>> {
        let fail = |why: String| Failure::Op(OpError::invalid(why)).into_eval(&ctx, &METRIC);
        r.metric(metric_of(name, &value, help, &labels).map_err(fail)?);
        Ok(())
    };
    reg.typed(
        &METRIC,
        &[
            "report: Report",
            "name: &str",
            "value: Dynamic",
            "help: &str",
            "()",
        ],
    )
    .set_into_module(
        reg.module(),
        move |ctx: NativeCallContext,
              r: &mut Report,
              name: &str,
              value: Dynamic,
              help: &str|
              -> Result<(), Box<rhai::EvalAltResult>> {
            metric(ctx, r, name, value, help, rhai::Map::new())
        },
    );
    reg.typed(
        &METRIC,
        &[
            "report: Report",
            "name: &str",
            "value: Dynamic",
            "help: &str",
            "labels: Map",
            "()",
        ],
    )
    .set_into_module(reg.module(), metric);
    reg.typed_as(&METRICS, "get$metrics", &["report: Report", "Array"])
        .set_into_module(reg.module(), |r: &mut Report| -> Dynamic {
            let metrics: Vec<serde_json::Value> = r
                .snapshot()
                .metrics
                .iter()
                .map(|m| {
                    let labels: serde_json::Map<String, serde_json::Value> = m
                        .labels
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone().into()))
                        .collect();
                    serde_json::json!({
                        "name": m.name, "help": m.help, "labels": labels, "value": m.value,
                    })
                })
                .collect();
            rhai::serde::to_dynamic(&metrics).unwrap_or_default()
        });
    reg.typed_as(&STATUS, "get$status", &["report: Report", "String"])
        .set_into_module(reg.module(), |r: &mut Report| -> String {
            serde_json::to_value(r.status())
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        });
    reg.typed_as(&CHECKS, "get$checks", &["report: Report", "Array"])
        .set_into_module(reg.module(), |r: &mut Report| -> Dynamic {
            rhai::serde::to_dynamic(&r.snapshot().checks).unwrap_or_default()
        });
    reg.typed_as(&ISSUES, "get$issues", &["report: Report", "Array"])
        .set_into_module(reg.module(), |r: &mut Report| -> Dynamic {
            rhai::serde::to_dynamic(&r.snapshot().issues).unwrap_or_default()
        });
    reg.typed(&TO_STRING, &["report: Report", "String"])
        .set_into_module(reg.module(), |r: &mut Report| -> String {
            anstream::adapter::strip_str(&r.to_text(crate::output::stdout_marks())).to_string()
        });
    // report::new lives in the module; the methods are global so `r.ok(…)` finds them.
    let module = reg.finish();
    engine.register_static_module("report", module.into());
}

/// A metric from a script's call, its name and labels checked against Prometheus' rules.
fn metric_of(
    name: &str,
    value: &Dynamic,
    help: &str,
    labels: &rhai::Map,
) -> Result<crate::report::Metric, String> {
    if let Some(why) = crate::report::metric_name_problem(name) {
        return Err(why);
    }
    let value = if let Ok(i) = value.as_int() {
        i as f64
    } else if let Ok(f) = value.as_float() {
        f
    } else if let Ok(b) = value.as_bool() {
        f64::from(u8::from(b))
    } else {
        return Err(format!(
            "metric `{name}`: the value must be a number or a bool, got {}",
            value.type_name()
        ));
    };
    if help.trim().is_empty() {
        return Err(format!("metric `{name}`: say what it measures in help"));
    }
    let mut pairs = Vec::new();
    for (k, v) in labels {
        if let Some(why) = crate::report::label_problem(k) {
            return Err(format!("metric `{name}`: {why}"));
        }
        pairs.push((k.to_string(), text_of(v)));
    }
    Ok(crate::report::Metric {
        name: name.to_string(),
        help: help.trim().to_string(),
        labels: pairs,
        value,
    })
}

/// A detail as text: an operation error caught in the script reads as its message.
fn text_of(value: &Dynamic) -> String {
    if let Some(failure) = value.read_lock::<crate::ops::error::OpFailure>() {
        return failure.to_string();
    }
    value.to_string()
}
