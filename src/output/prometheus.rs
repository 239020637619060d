//! `--format prometheus`: the runs as the text exposition format, for node_exporter's textfile
//! collector, by Prometheus' naming rules (what `promtool check metrics` checks): stable metric
//! names, whatever varies (procedure, target, check, job type) in labels, base units named in a
//! suffix (`_seconds`, `_bytes`), HELP and TYPE for every family, every family a gauge (a run's
//! figures are a state, not counters that only grow: no `_total`).
//!
//! opsh's own families, for every run:
//!
//! | metric | labels |
//! |---|---|
//! | opsh_status | procedure, target |
//! | opsh_check_status | procedure, target, check |
//! | opsh_duration_seconds | procedure, target |
//! | opsh_last_success_timestamp_seconds | procedure, target |
//!
//! and `opsh_<name>` for each `r.metric(name, value, help, labels)` of the report, with
//! procedure and target added to its labels.

use super::ran::Ran;
use crate::report::Status;

/// One metric family: its samples in order, under one HELP and TYPE.
struct Family {
    name: String,
    help: String,
    samples: Vec<(String, f64)>,
}

#[derive(Default)]
struct Families(Vec<Family>);

impl Families {
    fn add(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        let labels = label_text(labels);
        match self.0.iter_mut().find(|f| f.name == name) {
            Some(f) => match f.samples.iter_mut().find(|(l, _)| *l == labels) {
                // The same series twice (two targets of the same name): the last one stands.
                Some(sample) => sample.1 = value,
                None => f.samples.push((labels, value)),
            },
            None => self.0.push(Family {
                name: name.to_string(),
                help: help.to_string(),
                samples: vec![(labels, value)],
            }),
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.0 {
            out.push_str(&format!(
                "# HELP {} {}\n# TYPE {} gauge\n",
                f.name,
                escape_help(&f.help),
                f.name
            ));
            for (labels, value) in &f.samples {
                out.push_str(&format!("{}{{{labels}}} {}\n", f.name, number(*value)));
            }
        }
        out
    }
}

fn label_text(labels: &[(&str, &str)]) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect::<Vec<_>>()
        .join(",")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// A label value in the exposition format: backslash, double quote and newline escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// HELP text: backslash and newline escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

pub const LAST_SUCCESS: &str = "opsh_last_success_timestamp_seconds";

/// The value of a sample in an earlier exposition, by metric name and exact label text.
fn previous_value(previous: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    previous
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// The runs as metrics; `previous` is the exposition the output file held before (for
/// opsh_last_success_timestamp_seconds, kept from it when this run was not ok).
pub fn render(runs: &[Ran], previous: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let mut f = Families::default();
    for run in runs {
        let (procedure, target) = (run.procedure.as_str(), run.label());
        let base = [("procedure", procedure), ("target", target)];
        f.add(
            "opsh_status",
            "The procedure's status: 0 ok, 1 warning, 2 critical, 3 unknown (its exit code).",
            &base,
            f64::from(run.status().exit_code()),
        );
        f.add(
            "opsh_duration_seconds",
            "How long the procedure ran.",
            &base,
            run.seconds,
        );
        let last = if run.status() == Status::Ok {
            Some(now.timestamp_millis() as f64 / 1000.0)
        } else {
            previous_value(previous, LAST_SUCCESS, &label_text(&base))
        };
        if let Some(last) = last {
            f.add(
                LAST_SUCCESS,
                "When the procedure last ended ok (Unix time).",
                &base,
                last,
            );
        }
        let Some(report) = run.report() else {
            continue;
        };
        let data = report.snapshot();
        for check in &data.checks {
            f.add(
                "opsh_check_status",
                "Each check's status: 0 ok, 1 warning, 2 critical, 3 unknown.",
                &[
                    ("procedure", procedure),
                    ("target", target),
                    ("check", &check.name),
                ],
                f64::from(check.status.exit_code()),
            );
        }
        for m in &data.metrics {
            let mut labels = base.to_vec();
            labels.extend(m.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            f.add(&format!("opsh_{}", m.name), &m.help, &labels, m.value);
        }
    }
    f.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_help_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape_help("a\\b\nc"), "a\\\\b\\nc");
    }

    #[test]
    fn previous_last_success_is_found_by_its_labels() {
        let previous = "opsh_last_success_timestamp_seconds{procedure=\"x\",target=\"a\"} 17.5\n";
        assert_eq!(
            previous_value(previous, LAST_SUCCESS, "procedure=\"x\",target=\"a\""),
            Some(17.5)
        );
        assert_eq!(
            previous_value(previous, LAST_SUCCESS, "procedure=\"x\",target=\"b\""),
            None
        );
    }

    #[test]
    fn one_family_holds_every_label_set_under_one_help_and_type() {
        let mut f = Families::default();
        f.add("opsh_jobs", "Jobs.", &[("status", "pending")], 3.0);
        f.add("opsh_jobs", "Jobs.", &[("status", "failed")], 1.0);
        f.add("opsh_jobs", "Jobs.", &[("status", "failed")], 2.0);
        assert_eq!(
            f.render(),
            "# HELP opsh_jobs Jobs.\n# TYPE opsh_jobs gauge\nopsh_jobs{status=\"pending\"} 3\nopsh_jobs{status=\"failed\"} 2\n"
        );
    }
}
