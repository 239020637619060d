//! The interactive shell. Every entry is evaluated in one scope, so variables and functions
//! persist; errors are shown and the session goes on. On a terminal: completion, hints,
//! highlighting and multi-line entry (helper.rs), `:` commands (commands.rs), tables and the
//! pager (render.rs), history in the XDG state directory. From a pipe (`opsh < checks.rhai`) the
//! input is read like a script: no prompt or banner, statements may span lines, and the first
//! error ends the run with exit code 3.

pub mod commands;
pub mod helper;
pub mod live;
pub mod render;

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use rhai::{Dynamic, Scope};
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{ColorMode, CompletionType, Config, Editor};

use crate::error::{Error, code};
use crate::host::{Host, Outcome};
use crate::report::Report;
use commands::Action;
use helper::{OpshHelper, Procedure};
use live::Live;
use render::Display;

pub const PROMPT: &str = "opsh> ";

/// The prompt of this session: `opsh> `, or `opsh[prod]> ` against a named target.
static SESSION_PROMPT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The prompt in use (the helper measures the line after it).
pub fn prompt() -> &'static str {
    SESSION_PROMPT.get().map_or(PROMPT, String::as_str)
}

/// One REPL session: the host, the persistent scope and how results are shown.
pub struct Session<'h> {
    pub host: &'h mut Host,
    pub scope: Scope<'static>,
    pub display: Display,
    /// The exit code the last result decides (a report's status), for piped input.
    last_status: u8,
}

impl Session<'_> {
    /// Prints text, through the pager when it is taller than the screen.
    pub fn print(&self, text: &str) {
        render::show(text, &self.display, self.host.bridge());
    }

    /// Prints a result as a table, aligned map, report or JSON.
    pub fn show(&self, value: &Dynamic) {
        if let Some(text) = render::text(value, &self.display) {
            self.print(&text);
        }
    }

    /// One entry: a `:` command or Rhai code.
    pub fn entry(&mut self, text: &str) -> Result<Action, Error> {
        // A Ctrl-C that ended the previous entry must not count as the first of two presses
        // (which exits) while this one prints.
        drop(self.host.bridge().begin_run(None));
        let trimmed = text.trim();
        if trimmed.starts_with(':') {
            return commands::run(self, trimmed);
        }
        if matches!(trimmed, "exit" | "quit") {
            return Ok(Action::Quit(code::OK));
        }
        match self.host.eval_repl(&mut self.scope, text)? {
            Outcome::Value(value) => {
                self.last_status = status_of(&value);
                self.show(&value);
                Ok(Action::Continue)
            }
            Outcome::Exit(value) => {
                if let Ok(n) = value.as_int() {
                    return Ok(Action::Quit(u8::try_from(n).unwrap_or(code::UNKNOWN)));
                }
                self.show(&value);
                Ok(Action::Quit(status_of(&value)))
            }
        }
    }

    fn new(host: &mut Host, json: bool) -> Session<'_> {
        let display = Display::new(json).with_settings(host.settings());
        Session {
            host,
            scope: Host::scope(rhai::Map::new()),
            display,
            last_status: code::OK,
        }
    }
}

fn status_of(value: &Dynamic) -> u8 {
    value
        .clone()
        .try_cast::<Report>()
        .map_or(code::OK, |r| r.status().exit_code())
}

/// Runs the REPL on the terminal, or reads piped input as a script; returns the exit code.
pub fn run(host: &mut Host, json: bool) -> u8 {
    if std::io::stdin().is_terminal() {
        interactive(host, json)
    } else {
        piped(host, json)
    }
}

fn print_error(e: &Error) {
    crate::output::error(e);
}

/// Input from a pipe: statements are gathered until the parser says they are complete, then
/// evaluated in order in one scope; the first error ends the run (exit 3, 130 on Ctrl-C).
fn piped(host: &mut Host, json: bool) -> u8 {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("opsh: error: cannot read standard input: {e}");
        return code::UNKNOWN;
    }
    let parser = helper::parser();
    let mut session = Session::new(host, json);
    let mut pending = String::new();
    let mut lines = input.lines().peekable();
    while let Some(line) = lines.next() {
        if pending.is_empty() && line.trim().is_empty() {
            continue;
        }
        if pending.is_empty() && line.trim_start().starts_with(':') {
            match session.entry(line) {
                Ok(Action::Quit(status)) => return status,
                Ok(_) => continue,
                Err(e) => {
                    print_error(&e);
                    return e.exit_code();
                }
            }
        }
        pending.push_str(line);
        pending.push('\n');
        if let Some(next) = lines.peek()
            && (helper::incomplete(&parser, &pending) || continues(next))
        {
            continue;
        }
        match session.entry(&std::mem::take(&mut pending)) {
            Ok(Action::Quit(status)) => return status,
            Ok(_) => {}
            Err(e) => {
                print_error(&e);
                return e.exit_code();
            }
        }
        // Nobody reads the results any more: the rest of the input is not run.
        if let Some(status) = crate::output::failed() {
            return status;
        }
    }
    session.last_status
}

/// A line that carries on the statement before it, as scripts are written: a method chain
/// (`.len()`), `else`/`catch` on their own line, a leading binary operator.
fn continues(next: &str) -> bool {
    let next = next.trim_start();
    [
        "?.", "??", ".", "else", "catch", "||", "&&", "+", "*", "/", "==", "!=",
    ]
    .iter()
    .any(|p| next.starts_with(p))
        && !next.starts_with("..")
}

/// The procedures and their declared arguments, for `:run` completion.
pub fn procedures(host: &Host) -> Vec<Procedure> {
    host.catalog()
        .list()
        .into_iter()
        .map(|l| {
            let args = host
                .catalog()
                .find(&l.name)
                .ok()
                .and_then(|s| crate::host::params::declared(&s.display, &s.source).ok())
                .unwrap_or_default()
                .into_iter()
                .map(|d| d.name)
                .collect();
            Procedure { name: l.name, args }
        })
        .collect()
}

/// `$XDG_STATE_HOME/opsh/history`, else `~/.local/state/opsh/history`; the directory is made
/// 0700 and the file 0600 (it holds what was typed, SQL included).
pub fn history_path() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })?;
    Some(state.join("opsh").join("history"))
}

fn prepare_history(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    if !path.exists() {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
    }
    Ok(())
}

/// One line: version, target (the redacted PostgreSQL address), how to get help.
fn banner(host: &Host) -> String {
    format!(
        "opsh {} — {} — :help for help",
        env!("CARGO_PKG_VERSION"),
        host.target().pg_backend().address,
    )
}

fn interactive(host: &mut Host, json: bool) -> u8 {
    let display = Display::new(json).with_settings(host.settings());
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        .history_ignore_space(true)
        .color_mode(if display.colour {
            ColorMode::Enabled
        } else {
            ColorMode::Disabled
        });
    let config = match config
        .max_history_size(10_000)
        .and_then(|c| c.history_ignore_dups(true))
    {
        Ok(c) => c.build(),
        Err(e) => {
            eprintln!("opsh: error: cannot configure the line editor: {e}");
            return code::UNKNOWN;
        }
    };
    let mut editor: Editor<OpshHelper, FileHistory> = match Editor::with_config(config) {
        Ok(editor) => editor,
        Err(e) => {
            eprintln!("opsh: error: cannot start the line editor: {e}");
            return code::UNKNOWN;
        }
    };
    editor.set_helper(Some(OpshHelper::new(
        host.specs(),
        procedures(host),
        Live::new(Some(host.target())),
        display.colour,
    )));
    let history = history_path().filter(|p| match prepare_history(p) {
        Ok(()) => true,
        Err(e) => {
            eprintln!(
                "opsh: warning: history not kept: cannot create {}: {e}",
                p.display()
            );
            false
        }
    });
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    crate::output::out(&format!("{}\n", banner(host)));
    if let Some(name) = host.target().name.as_deref() {
        let _ = SESSION_PROMPT.set(format!("opsh[{name}]> "));
    }
    let mut session = Session::new(host, json);
    session.display = display;
    loop {
        match editor.readline(prompt()) {
            Ok(line) => {
                if line.trim().is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(line.trim_end());
                if let Some(path) = &history
                    && let Err(e) = editor.append_history(path)
                {
                    tracing::debug!("cannot save history to {}: {e}", path.display());
                }
                let action = match session.entry(&line) {
                    Ok(action) => action,
                    Err(e) => {
                        print_error(&e);
                        Action::Continue
                    }
                };
                if let Some(status) = crate::output::failed() {
                    return status;
                }
                let Some(helper) = editor.helper_mut() else {
                    continue;
                };
                match action {
                    Action::Quit(status) => return status,
                    Action::Reloaded => {
                        helper.set_procedures(procedures(session.host));
                        helper.live.clear();
                    }
                    Action::Continue => {}
                }
                helper.vars = session
                    .scope
                    .iter_raw()
                    .map(|(name, _, _)| name.to_string())
                    .filter(|n| n != "ARGS")
                    .collect();
                helper.functions = session
                    .host
                    .repl_functions()
                    .into_iter()
                    .map(|f| f.split('(').next().unwrap_or_default().to_string())
                    .collect();
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("opsh: error: {e}");
                return code::UNKNOWN;
            }
        }
    }
    code::OK
}
