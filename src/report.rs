//! Reports: named checks with a status and detail, plus issues found and metrics; rendered as
//! text (✅ ⚠️ ❌ as in the guide on a terminal, status words elsewhere) or JSON. The exit code is
//! the worst status.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::rc::Rc;

use serde::Serialize;

use crate::error::code;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Status {
    pub fn parse(text: &str) -> Option<Status> {
        match text {
            "ok" | "healthy" => Some(Status::Ok),
            "warning" | "warn" => Some(Status::Warning),
            "critical" => Some(Status::Critical),
            "unknown" => Some(Status::Unknown),
            _ => None,
        }
    }

    /// The status an exit code stands for: 0 ok, 1 warning, 2 critical, anything else unknown.
    pub fn of_code(code: u8) -> Status {
        match code {
            0 => Status::Ok,
            1 => Status::Warning,
            2 => Status::Critical,
            _ => Status::Unknown,
        }
    }

    pub fn exit_code(self) -> u8 {
        match self {
            Status::Ok => code::OK,
            Status::Warning => code::WARNING,
            Status::Critical => code::CRITICAL,
            Status::Unknown => code::UNKNOWN,
        }
    }

    /// The word Nagios and plain text use: OK, WARNING, CRITICAL, UNKNOWN.
    pub fn upper(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }

    /// How a check's status is marked in text: an emoji, or its word where no terminal reads.
    pub fn mark(self, marks: Marks) -> &'static str {
        match marks {
            Marks::Emoji => self.icon(),
            Marks::Words => self.upper(),
        }
    }

    fn icon(self) -> &'static str {
        match self {
            Status::Ok => "✅",
            Status::Warning => "⚠️",
            Status::Critical => "❌",
            Status::Unknown => "❔",
        }
    }

    /// The word the guide uses for the overall state.
    pub fn word(self) -> &'static str {
        match self {
            Status::Ok => "healthy",
            Status::Warning => "warning",
            Status::Critical => "critical",
            Status::Unknown => "unknown",
        }
    }

    fn style(self) -> anstyle::Style {
        let color = match self {
            Status::Ok => anstyle::AnsiColor::Green,
            Status::Warning => anstyle::AnsiColor::Yellow,
            Status::Critical => anstyle::AnsiColor::Red,
            Status::Unknown => anstyle::AnsiColor::Magenta,
        };
        anstyle::Style::new().fg_color(Some(color.into())).bold()
    }
}

/// How text marks a status: the guide's emoji on a terminal, words (OK, WARNING, …) in pipes
/// and files, where an emoji is noise to grep and to a log reader (`output.emoji`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marks {
    Emoji,
    Words,
}

/// One sample a script attaches for Prometheus and Nagios (`r.metric`): a stable name, labels
/// for what varies (a job type, a collection), never a name made from data.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    /// Without the `opsh_` prefix: `jobs`, `oldest_processing_age_seconds`.
    pub name: String,
    pub help: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportData {
    pub title: String,
    pub status: Status,
    pub checks: Vec<Check>,
    pub issues: Vec<String>,
    /// Machine-readable figures a script attaches (counts, ids), shown only in JSON.
    pub data: serde_json::Map<String, serde_json::Value>,
    /// Samples for `--format prometheus` and Nagios performance data; not in JSON (r.data is).
    #[serde(skip)]
    pub metrics: Vec<Metric>,
}

/// A report shared by reference inside scripts: passing it to a function and adding checks
/// there changes the caller's report too, as a site engineer expects.
#[derive(Debug, Clone)]
pub struct Report(Rc<RefCell<ReportData>>);

impl Report {
    pub fn new(title: &str) -> Report {
        Report(Rc::new(RefCell::new(ReportData {
            title: title.to_string(),
            status: Status::Ok,
            checks: Vec::new(),
            issues: Vec::new(),
            data: serde_json::Map::new(),
            metrics: Vec::new(),
        })))
    }

    pub fn check(&self, name: &str, status: Status, detail: &str) {
        let mut data = self.0.borrow_mut();
        data.status = data.status.max(status);
        data.checks.push(Check {
            name: name.into(),
            status,
            detail: detail.into(),
        });
    }

    pub fn issue(&self, text: &str) {
        self.0.borrow_mut().issues.push(text.into());
    }

    pub fn set_data(&self, key: &str, value: serde_json::Value) {
        self.0.borrow_mut().data.insert(key.into(), value);
    }

    /// Adds a sample, or replaces the one with the same name and labels. The name and labels
    /// are checked by [`metric_name_problem`] and [`label_problem`] first.
    pub fn metric(&self, metric: Metric) {
        let mut data = self.0.borrow_mut();
        match data
            .metrics
            .iter_mut()
            .find(|m| m.name == metric.name && m.labels == metric.labels)
        {
            Some(old) => old.value = metric.value,
            None => data.metrics.push(metric),
        }
    }

    pub fn status(&self) -> Status {
        self.0.borrow().status
    }

    pub fn snapshot(&self) -> ReportData {
        self.0.borrow().clone()
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&*self.0.borrow()).unwrap_or(serde_json::Value::Null)
    }

    /// Text with ANSI styles; the caller's anstream writer strips them when stdout is not a
    /// terminal or NO_COLOR is set.
    pub fn to_text(&self, marks: Marks) -> String {
        let data = self.0.borrow();
        let mut out = String::new();
        let bold = anstyle::Style::new().bold();
        let _ = writeln!(out, "{bold}{}{bold:#}", data.title);
        for check in &data.checks {
            let _ = write!(out, "{} {}", check.status.mark(marks), check.name);
            if !check.detail.is_empty() {
                let _ = write!(out, ": {}", check.detail);
            }
            out.push('\n');
        }
        if !data.issues.is_empty() {
            out.push_str("Issues:\n");
            for issue in &data.issues {
                let _ = writeln!(out, "  - {issue}");
            }
        }
        let style = data.status.style();
        let _ = match marks {
            Marks::Emoji => writeln!(
                out,
                "Status: {} {style}{}{style:#}",
                data.status.icon(),
                data.status.word()
            ),
            Marks::Words => writeln!(out, "Status: {style}{}{style:#}", data.status.upper()),
        };
        out
    }
}

/// The metrics opsh writes itself for every run; a script's r.metric may not take their names.
pub const RESERVED_METRICS: &[&str] = &[
    "status",
    "check_status",
    "duration_seconds",
    "last_success_timestamp_seconds",
];

/// Why `name` (without `opsh_`) cannot be a metric a script attaches, or None. Prometheus'
/// naming rules as promtool checks them: snake_case, a gauge never ends in `_total` (opsh
/// writes gauges: a run's figures are not counters that only grow).
pub fn metric_name_problem(name: &str) -> Option<String> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Some(format!(
            "metric name `{name}` is not snake_case ([a-z][a-z0-9_]*)"
        ));
    }
    if name.ends_with("_total")
        || name.ends_with("_count")
        || name.ends_with("_sum")
        || name.ends_with("_bucket")
    {
        return Some(format!(
            "metric name `{name}`: opsh writes gauges, and `_total`, `_count`, `_sum` and `_bucket` belong to counters, summaries and histograms"
        ));
    }
    // promtool's lint: base units spelt out (`_seconds`, `_bytes`), no abbreviation, no type.
    for part in name.split('_') {
        if [
            "s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d",
        ]
        .contains(&part)
        {
            return Some(format!(
                "metric name `{name}`: `{part}` abbreviates a unit; spell the base unit out (`_seconds`, `_bytes`)"
            ));
        }
        let prefixed = [
            "pico", "nano", "micro", "milli", "centi", "deci", "deca", "hecto", "kilo", "kibi",
            "mega", "mebi", "giga", "gibi", "tera", "tebi", "peta", "pebi",
        ]
        .iter()
        .any(|p| {
            part.strip_prefix(p)
                .is_some_and(|u| ["seconds", "bytes", "meters"].contains(&u))
        });
        if prefixed || ["minutes", "hours", "days", "weeks"].contains(&part) {
            return Some(format!(
                "metric name `{name}`: `{part}` is not a base unit; use seconds or bytes"
            ));
        }
        if part == "gauge" {
            return Some(format!("metric name `{name}` names its type"));
        }
    }
    if RESERVED_METRICS.contains(&name) {
        return Some(format!("metric name `{name}` is one opsh writes itself"));
    }
    None
}

/// Why `name` cannot be a label of a script's metric, or None; `procedure` and `target` are
/// opsh's own.
pub fn label_problem(name: &str) -> Option<String> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__");
    if !valid {
        return Some(format!(
            "label name `{name}` is not [a-zA-Z_][a-zA-Z0-9_]* (and `__` is Prometheus' own)"
        ));
    }
    if ["procedure", "target"].contains(&name) {
        return Some(format!("label `{name}` is one opsh sets itself"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_status_wins_and_text_matches_the_guide() {
        let r = Report::new("Data integrity");
        r.check("database", Status::Ok, "connected");
        r.check("stuck jobs", Status::Warning, "2 jobs");
        r.issue("2 jobs processing for more than 1d");
        assert_eq!(r.status(), Status::Warning);
        assert_eq!(r.status().exit_code(), 1);
        let plain = anstream::adapter::strip_str(&r.to_text(Marks::Emoji)).to_string();
        assert_eq!(
            plain,
            "Data integrity\n✅ database: connected\n⚠️ stuck jobs: 2 jobs\nIssues:\n  - 2 jobs processing for more than 1d\nStatus: ⚠️ warning\n"
        );
        let words = anstream::adapter::strip_str(&r.to_text(Marks::Words)).to_string();
        assert_eq!(
            words,
            "Data integrity\nOK database: connected\nWARNING stuck jobs: 2 jobs\nIssues:\n  - 2 jobs processing for more than 1d\nStatus: WARNING\n"
        );
    }

    #[test]
    fn metric_names_and_labels_follow_prometheus_rules() {
        assert_eq!(metric_name_problem("jobs"), None);
        assert_eq!(metric_name_problem("database_size_bytes"), None);
        assert!(metric_name_problem("deleted_total").is_some());
        assert!(metric_name_problem("Jobs").is_some());
        assert!(metric_name_problem("9lives").is_some());
        assert!(metric_name_problem("status").is_some());
        assert!(metric_name_problem("age_ms").is_some());
        assert!(metric_name_problem("size_kilobytes").is_some());
        assert!(metric_name_problem("age_minutes").is_some());
        assert!(metric_name_problem("jobs_gauge").is_some());
        assert_eq!(label_problem("job_type"), None);
        assert!(label_problem("target").is_some());
        assert!(label_problem("__name").is_some());
        assert!(label_problem("job-type").is_some());
    }

    #[test]
    fn a_metric_with_the_same_labels_replaces_the_earlier_sample() {
        let r = Report::new("t");
        let m = |v: f64| Metric {
            name: "stuck".into(),
            help: "h".into(),
            labels: vec![("type".into(), "a".into())],
            value: v,
        };
        r.metric(m(1.0));
        r.metric(m(2.0));
        let metrics = r.snapshot().metrics;
        assert_eq!(metrics.len(), 1);
        assert_eq!(metrics[0].value, 2.0);
    }
}
