//! Reports: named checks with a status and detail, plus issues found; rendered as text (✅ ⚠️ ❌,
//! as in the guide) or JSON. The exit code is the worst status.

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

    pub fn exit_code(self) -> u8 {
        match self {
            Status::Ok => code::OK,
            Status::Warning => code::WARNING,
            Status::Critical => code::CRITICAL,
            Status::Unknown => code::UNKNOWN,
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
    fn word(self) -> &'static str {
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
    pub fn to_text(&self) -> String {
        let data = self.0.borrow();
        let mut out = String::new();
        let bold = anstyle::Style::new().bold();
        let _ = writeln!(out, "{bold}{}{bold:#}", data.title);
        for check in &data.checks {
            let _ = write!(out, "{} {}", check.status.icon(), check.name);
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
        let _ = writeln!(
            out,
            "Status: {} {style}{}{style:#}",
            data.status.icon(),
            data.status.word()
        );
        out
    }
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
        let plain = anstream::adapter::strip_str(&r.to_text()).to_string();
        assert_eq!(
            plain,
            "Data integrity\n✅ database: connected\n⚠️ stuck jobs: 2 jobs\nIssues:\n  - 2 jobs processing for more than 1d\nStatus: ⚠️ warning\n"
        );
    }
}
