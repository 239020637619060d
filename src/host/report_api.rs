//! `report::` — the Rhai face of crate::report.

use rhai::{Dynamic, Engine, Module};

use crate::ops::support::{OpError, RhaiResult, func, global_func, op_error};
use crate::report::{Report, Status};

pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Report>("Report");
    let mut m = Module::new();
    func(
        "new",
        &["title: &str", "Report"],
        "A new report; add checks and issues, then end the script with it: its worst status is \
the exit code (0 ok, 1 warning, 2 critical).\n```rhai\nlet r = report::new(\"Jobs\"); r.ok(\"database\", \"connected\"); r.status == \"ok\"\n```",
    )
    .set_into_module(&mut m, |title: &str| Report::new(title));

    for (name, status, verb) in [
        ("ok", Status::Ok, "passed"),
        ("warn", Status::Warning, "found a warning"),
        ("critical", Status::Critical, "found a critical problem"),
        ("unknown", Status::Unknown, "could not decide"),
    ] {
        global_func(
            name,
            &["report: Report", "name: &str", "detail: &str", "()"],
            &format!(
                "Adds a check that {verb}.\n```rhai\nlet r = report::new(\"t\"); r.{name}(\"database\", \"detail\"); r.checks.len() == 1\n```"
            ),
        )
        .set_into_module(&mut m, move |r: &mut Report, check: &str, detail: &str| {
            r.check(check, status, detail)
        });
    }

    global_func(
        "check",
        &["report: Report", "name: &str", "status: &str", "detail: &str", "()"],
        "Adds a check with a status given as text: \"ok\", \"warning\", \"critical\" or \"unknown\".\n```rhai\nlet r = report::new(\"t\"); r.check(\"jobs\", \"warning\", \"3 stuck\"); r.status == \"warning\"\n```",
    )
    .set_into_module(&mut m, |r: &mut Report, check: &str, status: &str, detail: &str| -> RhaiResult<()> {
        let status = Status::parse(status).ok_or_else(|| {
            op_error(
                "report.check",
                OpError::Invalid(format!("status `{status}` is not one of ok, warning, critical, unknown")),
            )
        })?;
        r.check(check, status, detail);
        Ok(())
    });

    global_func(
        "issue",
        &["report: Report", "text: &str", "()"],
        "Records a problem found, in words an operator can act on.\n```rhai\nlet r = report::new(\"t\"); r.issue(\"3 jobs stuck for more than 1h\"); r.issues.len() == 1\n```",
    )
    .set_into_module(&mut m, |r: &mut Report, text: &str| r.issue(text));

    global_func(
        "data",
        &["report: Report", "key: &str", "value: Dynamic", "()"],
        "Attaches a machine-readable value (shown in --json output).\n```rhai\nlet r = report::new(\"t\"); r.data(\"stuck\", 3); r.status == \"ok\"\n```",
    )
    .set_into_module(&mut m, |r: &mut Report, key: &str, value: Dynamic| -> RhaiResult<()> {
        let json = serde_json::to_value(&value)
            .map_err(|e| op_error("report.data", OpError::Invalid(e.to_string())))?;
        r.set_data(key, json);
        Ok(())
    });

    global_func("get$status", &["report: Report", "String"], "The worst status so far: \"ok\", \"warning\", \"critical\" or \"unknown\".\n```rhai\nreport::new(\"t\").status == \"ok\"\n```")
        .set_into_module(&mut m, |r: &mut Report| -> String {
            serde_json::to_value(r.status()).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
        });
    global_func("get$checks", &["report: Report", "Array"], "The checks so far, as maps with name, status and detail.\n```rhai\nreport::new(\"t\").checks.len() == 0\n```")
        .set_into_module(&mut m, |r: &mut Report| -> Dynamic {
            rhai::serde::to_dynamic(&r.snapshot().checks).unwrap_or_default()
        });
    global_func(
        "get$issues",
        &["report: Report", "Array"],
        "The issues recorded so far.\n```rhai\nreport::new(\"t\").issues.len() == 0\n```",
    )
    .set_into_module(&mut m, |r: &mut Report| -> Dynamic {
        rhai::serde::to_dynamic(&r.snapshot().issues).unwrap_or_default()
    });
    global_func(
        "to_string",
        &["report: Report", "String"],
        "The report as text.\n```rhai\nreport::new(\"Jobs\").to_string().contains(\"Jobs\")\n```",
    )
    .set_into_module(&mut m, |r: &mut Report| -> String {
        anstream::adapter::strip_str(&r.to_text()).to_string()
    });
    engine.register_static_module("report", m.into());
}
