//! Keys: what each one does to the view, and which actions it asks to confirm.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::app::{Action, App, FollowedLogs, Overlay};

/// What the loop must do after a key, beyond the state change made here.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    None,
    /// Run this confirmed action.
    Run(Action),
    /// Follow this service's logs, or stop following (None).
    Logs(Option<String>),
}

pub fn key(app: &mut App, key: KeyEvent) -> Effect {
    if key.kind == KeyEventKind::Release {
        return Effect::None;
    }
    let ctrl_c = key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
    if ctrl_c {
        app.quit = true;
        return Effect::None;
    }
    match std::mem::replace(&mut app.overlay, Overlay::None) {
        Overlay::Confirm(action) => {
            if key.code == KeyCode::Char('y') || key.code == KeyCode::Char('Y') {
                app.message = Some(format!("running opsh {}…", action.command().join(" ")));
                return Effect::Run(action);
            }
            app.message = Some("cancelled: nothing done".into());
            return Effect::None;
        }
        // Any key closes the help; q still quits.
        Overlay::Help if key.code != KeyCode::Char('q') => return Effect::None,
        _ => {}
    }
    match key.code {
        KeyCode::Char('q') | KeyCode::Esc => app.quit = true,
        KeyCode::Char('?') | KeyCode::Char('h') => app.overlay = Overlay::Help,
        KeyCode::Up | KeyCode::Char('k') | KeyCode::Down | KeyCode::Char('j') => {
            let step = if matches!(key.code, KeyCode::Up | KeyCode::Char('k')) {
                -1
            } else {
                1
            };
            let before = app.selected.clone();
            app.select(step);
            // The logs pane follows the selection: the old stream stops, the new one starts.
            if app.logs.is_some() && app.selected != before {
                let service = app.selected.clone();
                app.logs = service.clone().map(FollowedLogs::new);
                return Effect::Logs(service);
            }
        }
        KeyCode::Char('p') => {
            let Some(c) = app.selected_container() else {
                app.message = Some("no container selected".into());
                return Effect::None;
            };
            let action = if c.state == "paused" {
                Action::Unpause(c.service.clone())
            } else {
                Action::Pause(c.service.clone())
            };
            app.overlay = Overlay::Confirm(action);
        }
        KeyCode::Char('s') => app.overlay = Overlay::Confirm(Action::SafeStop),
        KeyCode::Char('r') => {
            app.overlay = Overlay::Confirm(Action::ResetStuck(app.stuck_after.clone()));
        }
        KeyCode::Char('c') => app.overlay = Overlay::Confirm(Action::CheckData),
        KeyCode::Char('l') => {
            if app.logs.is_some() {
                app.logs = None;
                return Effect::Logs(None);
            }
            let Some(service) = app.selected.clone() else {
                app.message = Some("no container selected".into());
                return Effect::None;
            };
            app.logs = Some(FollowedLogs::new(service.clone()));
            return Effect::Logs(Some(service));
        }
        _ => {}
    }
    Effect::None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn press(app: &mut App, c: char) -> Effect {
        key(app, KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
    }

    #[test]
    fn an_action_runs_only_after_y() {
        let mut app = App::new(false, Duration::from_secs(2), None, "1h".into());
        assert_eq!(press(&mut app, 'r'), Effect::None);
        assert_eq!(
            app.overlay,
            Overlay::Confirm(Action::ResetStuck("1h".into()))
        );
        assert_eq!(press(&mut app, 'n'), Effect::None);
        assert_eq!(app.overlay, Overlay::None);
        press(&mut app, 'c');
        assert_eq!(press(&mut app, 'y'), Effect::Run(Action::CheckData));
    }

    #[test]
    fn q_and_ctrl_c_quit() {
        let mut app = App::new(false, Duration::from_secs(2), None, "1h".into());
        press(&mut app, 'q');
        assert!(app.quit);
        let mut app = App::new(false, Duration::from_secs(2), None, "1h".into());
        key(
            &mut app,
            KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
        );
        assert!(app.quit);
    }
}
