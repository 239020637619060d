//! The view's state: the last reading of each pane (or why it failed), the selected container,
//! what the view is showing over the panes (help, a confirmation), the logs followed and the
//! outcome of the last action.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::data::{Container, Host, Jobs, Reading, Redis, Stt, Update, Vectors};

/// A pane's last reading: its value, or why it could not be read, and when.
#[derive(Debug, Clone)]
pub struct Pane<T> {
    pub value: Result<T, String>,
    pub at: Instant,
}

/// What a key asks for that changes the stack: confirmed in the view, then run as the bundled
/// procedure (the destructive helper's checks and audit record with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Pause(String),
    Unpause(String),
    SafeStop,
    ResetStuck(String),
    CheckData,
}

impl Action {
    /// The procedure and its arguments.
    pub fn command(&self) -> Vec<String> {
        match self {
            Action::Pause(s) => vec!["pause".into(), format!("services={s}")],
            Action::Unpause(s) => vec!["unpause".into(), format!("services={s}")],
            Action::SafeStop => vec!["safe-stop".into()],
            Action::ResetStuck(older) => {
                vec!["reset-stuck-jobs".into(), format!("older_than={older}")]
            }
            Action::CheckData => vec!["check-data".into()],
        }
    }

    /// The question the view asks before it acts.
    pub fn question(&self) -> String {
        match self {
            Action::Pause(s) => format!("Pause {s}? Its CPU stops until it is unpaused."),
            Action::Unpause(s) => format!("Unpause {s}?"),
            Action::SafeStop => {
                "Safe-stop the whole stack? Processing jobs get their grace period, the rest go \
                 back to pending, then every container stops."
                    .into()
            }
            Action::ResetStuck(older) => {
                format!("Reset the jobs processing for more than {older} to pending?")
            }
            Action::CheckData => "Run check-data now? (it only reads)".into(),
        }
    }
}

/// What is drawn over the panes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    None,
    Help,
    Confirm(Action),
}

/// How many lines of the followed logs the view keeps.
pub const LOG_LINES: usize = 1000;

/// The followed logs: the service, its last lines (at most [`LOG_LINES`]), and what its stream
/// is doing ("following", the container stopped or gone, or why it cannot be read).
#[derive(Debug)]
pub struct FollowedLogs {
    pub service: String,
    pub lines: VecDeque<String>,
    pub state: Result<String, String>,
}

impl FollowedLogs {
    pub fn new(service: String) -> FollowedLogs {
        FollowedLogs {
            service,
            lines: VecDeque::new(),
            state: Ok("starting".into()),
        }
    }

    /// Appends lines, dropping the oldest beyond [`LOG_LINES`].
    pub fn push(&mut self, lines: impl IntoIterator<Item = String>) {
        self.lines.extend(lines);
        let over = self.lines.len().saturating_sub(LOG_LINES);
        self.lines.drain(..over);
    }
}

#[derive(Debug)]
pub struct App {
    pub containers: Option<Pane<Vec<Container>>>,
    pub jobs: Option<Pane<Jobs>>,
    pub vectors: Option<Pane<Vectors>>,
    pub redis: Option<Pane<Redis>>,
    pub stt: Option<Pane<Stt>>,
    pub host: Option<Pane<Host>>,
    /// The selected container's service.
    pub selected: Option<String>,
    pub overlay: Overlay,
    /// The service whose logs are followed in a pane.
    pub logs: Option<FollowedLogs>,
    /// The last action's outcome, or that one is running.
    pub message: Option<String>,
    pub colour: bool,
    pub refresh: Duration,
    /// The named target, shown in the title.
    pub target: Option<String>,
    pub stuck_after: String,
    pub quit: bool,
}

impl App {
    pub fn new(
        colour: bool,
        refresh: Duration,
        target: Option<String>,
        stuck_after: String,
    ) -> App {
        App {
            containers: None,
            jobs: None,
            vectors: None,
            redis: None,
            stt: None,
            host: None,
            selected: None,
            overlay: Overlay::None,
            logs: None,
            message: None,
            colour,
            refresh,
            target,
            stuck_after,
            quit: false,
        }
    }

    pub fn apply(&mut self, update: Update) {
        let at = update.at;
        match update.reading {
            Reading::Containers(value) => {
                if self.selected.is_none()
                    && let Ok(list) = &value
                {
                    self.selected = list.first().map(|c| c.service.clone());
                }
                self.containers = Some(Pane { value, at });
            }
            Reading::Jobs(value) => self.jobs = Some(Pane { value, at }),
            Reading::Vectors(value) => self.vectors = Some(Pane { value, at }),
            Reading::Redis(value) => self.redis = Some(Pane { value, at }),
            Reading::Stt(value) => self.stt = Some(Pane { value, at }),
            Reading::Host(value) => self.host = Some(Pane { value, at }),
        }
    }

    /// The containers as listed (empty while unread or failed).
    pub fn listed(&self) -> &[Container] {
        match &self.containers {
            Some(Pane {
                value: Ok(list), ..
            }) => list,
            _ => &[],
        }
    }

    /// The selected container, if it is still listed.
    pub fn selected_container(&self) -> Option<&Container> {
        let name = self.selected.as_deref()?;
        self.listed().iter().find(|c| c.service == name)
    }

    /// Moves the selection by `step` containers.
    pub fn select(&mut self, step: isize) {
        let list = self.listed();
        if list.is_empty() {
            return;
        }
        let at = self
            .selected
            .as_deref()
            .and_then(|s| list.iter().position(|c| c.service == s))
            .unwrap_or(0);
        let next = at.saturating_add_signed(step).min(list.len() - 1);
        self.selected = Some(list[next].service.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_followed_logs_keep_their_last_lines_only() {
        let mut logs = FollowedLogs::new("web".into());
        logs.push((0..600).map(|i| format!("line {i}")));
        logs.push((600..1500).map(|i| format!("line {i}")));
        assert_eq!(logs.lines.len(), LOG_LINES);
        assert_eq!(logs.lines.front().map(String::as_str), Some("line 500"));
        assert_eq!(logs.lines.back().map(String::as_str), Some("line 1499"));
    }
}
