//! `--format nagios`: the plugin convention (Nagios, Icinga, Naemon). The first line is the
//! service, its state and a summary, then the performance data after a `|`:
//!
//! ```text
//! OPSH CHECK-JOBS WARNING - stuck jobs: 1 processing for more than 1h | jobs_stuck=1;;; …
//! ```
//!
//! then the long output: the report as text, status words instead of emoji. The exit code is
//! the run's, as always (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN), so the word on the first line
//! and the code agree. The performance data are the report's metrics (`r.metric`): a label is
//! the metric's name and its label values (in the labels' name order) joined with `_`, its unit
//! `s` or `B` from the name's suffix.

use super::ran::{Ran, error_text, outcome_report, text_of};
use crate::report::{Marks, ReportData, Status};

/// The plugin output of the runs and the status it reports.
pub fn render(runs: &[Ran], several: bool) -> (String, Status) {
    let status = if several {
        runs.iter()
            .map(Ran::status)
            .max()
            .unwrap_or(Status::Unknown)
    } else {
        runs.first()
            .map(|r| Status::of_code(r.exit_code()))
            .unwrap_or(Status::Unknown)
    };
    let procedure = runs.first().map(|r| r.procedure.as_str()).unwrap_or("opsh");
    let summary = if several {
        runs.iter()
            .map(|r| format!("{} {}", r.label(), r.status().upper()))
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        runs.first().map(summary_of).unwrap_or_default()
    };
    let perf: Vec<String> = runs
        .iter()
        .flat_map(|r| {
            let prefix = if several {
                format!("{}:", r.label())
            } else {
                String::new()
            };
            r.report()
                .map(|rep| perf_data(&rep.snapshot(), &prefix))
                .unwrap_or_default()
        })
        .collect();
    let mut out = format!(
        "OPSH {} {} - {}",
        procedure.to_uppercase(),
        status.upper(),
        clean(&summary)
    );
    if !perf.is_empty() {
        out.push_str(" | ");
        out.push_str(&perf.join(" "));
    }
    out.push('\n');
    for run in runs {
        if several {
            out.push_str(&format!("\n{}: {}\n", run.label(), run.status().upper()));
        }
        let long = match &run.result {
            Ok(outcome) => text_of(outcome, Marks::Words),
            Err(e) => format!("{}\n", error_text(e)),
        };
        out.push_str(&clean(&anstream::adapter::strip_str(&long).to_string()));
    }
    (out, status)
}

/// The first line's summary of one run: what is wrong (the checks of the worst status), or
/// that all is well.
fn summary_of(run: &Ran) -> String {
    let outcome = match &run.result {
        Ok(outcome) => outcome,
        Err(e) => return error_text(e).lines().next().unwrap_or_default().to_string(),
    };
    let Some(report) = outcome_report(outcome) else {
        let text = text_of(outcome, Marks::Words);
        return match text.lines().next() {
            Some(line) if !line.is_empty() => line.to_string(),
            _ => format!("exit code {}", run.exit_code()),
        };
    };
    let data = report.snapshot();
    if data.status == Status::Ok {
        return match data.checks.len() {
            0 => data.title,
            1 => format!("{}: 1 check ok", data.title),
            n => format!("{}: {n} checks ok", data.title),
        };
    }
    data.checks
        .iter()
        .filter(|c| c.status == data.status)
        .map(|c| {
            if c.detail.is_empty() {
                c.name.clone()
            } else {
                format!("{}: {}", c.name, c.detail)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The report's metrics as performance data: `label=value[unit];;;`.
fn perf_data(data: &ReportData, prefix: &str) -> Vec<String> {
    data.metrics
        .iter()
        .map(|m| {
            let mut label = format!("{prefix}{}", m.name);
            for (_, v) in &m.labels {
                label.push('_');
                label.push_str(v);
            }
            let label: String = label
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "_.:-/".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let unit = if m.name.ends_with("_seconds") {
                "s"
            } else if m.name.ends_with("_bytes") {
                "B"
            } else {
                ""
            };
            format!("{label}={}{unit};;;", m.value)
        })
        .collect()
}

/// `|` starts performance data wherever it stands: none may appear in the text.
fn clean(text: &str) -> String {
    text.replace('|', "/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Outcome;
    use crate::report::{Metric, Report};

    fn ran(report: &Report) -> Ran {
        Ran {
            procedure: "check-jobs".into(),
            target: None,
            started_at: chrono::Utc::now(),
            seconds: 0.1,
            result: Ok(Outcome::Value(rhai::Dynamic::from(report.clone()))),
        }
    }

    #[test]
    fn the_first_line_has_the_state_the_worst_checks_and_the_performance_data() {
        let r = Report::new("Job queue");
        r.check("database", Status::Ok, "connected");
        r.check(
            "stuck jobs",
            Status::Warning,
            "1 processing for more than 1h | x",
        );
        r.metric(Metric {
            name: "jobs_stuck".into(),
            help: "h".into(),
            labels: vec![],
            value: 1.0,
        });
        r.metric(Metric {
            name: "oldest_processing_job_age_seconds".into(),
            help: "h".into(),
            labels: vec![("type".into(), "process audio".into())],
            value: 7200.0,
        });
        let (text, status) = render(&[ran(&r)], false);
        assert_eq!(status, Status::Warning);
        assert_eq!(
            text,
            "OPSH CHECK-JOBS WARNING - stuck jobs: 1 processing for more than 1h / x | jobs_stuck=1;;; oldest_processing_job_age_seconds_process_audio=7200s;;;\n\
             Job queue\nOK database: connected\nWARNING stuck jobs: 1 processing for more than 1h / x\nStatus: WARNING\n"
        );
    }
}
