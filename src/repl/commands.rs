//! The `:` commands: help from the function specs, procedures, variables, reload, settings.

use std::fmt::Write as _;

use crate::error::{Error, code};
use crate::host::Outcome;
use crate::repl::Session;
use crate::repl::helper::COMMANDS;

/// What the loop does after an entry.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// Site scripts were reloaded: the completion data must be read again.
    Reloaded,
    Quit(u8),
}

pub fn run(session: &mut Session, line: &str) -> Result<Action, Error> {
    let line = line.trim();
    let (command, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    match command {
        ":help" | ":h" | ":?" if rest.is_empty() => {
            let text = help(session);
            session.print(&text);
        }
        ":help" | ":h" | ":?" => {
            let text = help_for(session, rest)?;
            session.print(&text);
        }
        ":scripts" => {
            let listed = session.host.catalog().list();
            if session.display.json {
                crate::output::scripts(&listed, true);
            } else {
                let width = listed.iter().map(|l| l.name.len()).max().unwrap_or(0);
                let mut text = String::new();
                for l in &listed {
                    let origin = match l.origin {
                        crate::host::catalog::Origin::Bundled => "bundled",
                        _ => "site",
                    };
                    let _ = writeln!(text, "{:width$}  {origin:8}  {}", l.name, l.description);
                }
                session.print(&text);
            }
        }
        ":run" => run_procedure(session, rest)?,
        ":vars" => {
            let text = vars(session);
            session.print(&text);
        }
        ":reload" => {
            session.host.reload();
            eprintln!("reloaded: site scripts are read again at their next use");
            return Ok(Action::Reloaded);
        }
        ":json" => session.display.json = on_off(":json", rest, session.display.json)?,
        ":pager" => session.display.pager = on_off(":pager", rest, session.display.pager)?,
        ":x" => {
            // Without a word it toggles, as psql's \x does.
            let expanded = match rest {
                "" => !session.display.expanded,
                word => on_off(":x", word, session.display.expanded)?,
            };
            session.display.expanded = expanded;
            eprintln!(
                "expanded display is {}",
                if expanded { "on" } else { "off" }
            );
        }
        ":quit" | ":q" | ":exit" => return Ok(Action::Quit(code::OK)),
        other => {
            let names = COMMANDS.iter().map(|(c, _)| *c);
            let hint = match crate::suggest::ranked(other, names).first() {
                Some(s) => format!("did you mean `{s}`? "),
                None => String::new(),
            };
            return Err(Error::Usage {
                message: format!("unknown command `{other}`; {hint}`:help` lists the commands"),
            });
        }
    }
    Ok(Action::Continue)
}

fn on_off(command: &str, word: &str, current: bool) -> Result<bool, Error> {
    match word {
        "on" => Ok(true),
        "off" => Ok(false),
        "" => {
            eprintln!("{command} is {}", if current { "on" } else { "off" });
            Ok(current)
        }
        other => Err(Error::Usage {
            message: format!("`{command} {other}`: write `{command} on` or `{command} off`"),
        }),
    }
}

fn help(session: &Session) -> String {
    let specs = session.host.specs();
    let mut out = format!(
        "opsh {} — Rhai with the operations modules. Type an expression or a statement; an \
         unfinished one (open brace, bracket or string) continues on the next line.\n\nCommands:\n",
        env!("CARGO_PKG_VERSION")
    );
    for (command, what) in COMMANDS {
        let _ = writeln!(out, "  {command:9} {what}");
    }
    out.push_str("\nModules:\n");
    let mut modules: Vec<&str> = Vec::new();
    for s in specs {
        if !s.module.is_empty() && !modules.contains(&s.module) {
            modules.push(s.module);
        }
    }
    for m in &modules {
        let names: Vec<&str> = specs
            .iter()
            .filter(|s| s.module == *m)
            .map(|s| s.name)
            .collect();
        let _ = writeln!(out, "  {m}::  {}", names.join(", "));
    }
    let globals: Vec<&str> = specs
        .iter()
        .filter(|s| s.module.is_empty() && !is_method(s))
        .map(|s| s.name)
        .collect();
    let _ = writeln!(out, "  globals  {}", globals.join(", "));
    out.push_str(
        "\n`:help jobs` lists a module, `:help jobs::list` shows one function with its options and \
         an example.\nKeys: Tab completes, Ctrl-C cancels the running command, Ctrl-R searches the \
         history, Ctrl-D leaves.\n",
    );
    out
}

fn is_method(s: &crate::ops::spec::Spec) -> bool {
    s.params
        .first()
        .is_some_and(|p| p.kind == crate::ops::spec::Kind::Report)
}

/// `:help jobs::list` in full (from the spec, as `opsh api jobs::list`), `:help jobs` a listing.
fn help_for(session: &Session, name: &str) -> Result<String, Error> {
    if let Some((command, what)) = COMMANDS
        .iter()
        .find(|(c, _)| *c == name || c.trim_start_matches(':') == name)
    {
        return Ok(format!("{command}: {what}\n"));
    }
    let name = name.trim_end_matches("::").trim_end_matches('(');
    let specs = crate::api::select(session.host.specs(), Some(name))?;
    if specs.iter().all(|s| s.path() == name) {
        let texts: Vec<String> = specs.iter().map(|s| crate::api::full(s)).collect();
        Ok(texts.join("\n"))
    } else {
        Ok(crate::api::listing(&specs))
    }
}

/// `:run <procedure> [key=value]…`: the same declared-argument path as `opsh <procedure>`.
fn run_procedure(session: &mut Session, rest: &str) -> Result<(), Error> {
    let words = split_words(rest)?;
    let Some((name, args)) = words.split_first() else {
        return Err(Error::Usage {
            message:
                "`:run` needs a procedure: `:run check-jobs [key=value]…` (`:scripts` lists them)"
                    .into(),
        });
    };
    let host = &mut *session.host;
    let script = if name.ends_with(".rhai") || name.contains('/') {
        host.catalog().file(std::path::Path::new(name))?
    } else {
        host.catalog().find(name)?
    };
    let declared = crate::host::params::declared(&script.display, &script.source)?;
    let mut given = Vec::new();
    for word in args {
        match word.split_once('=') {
            Some((key, value)) if !key.is_empty() => {
                given.push((key.to_string(), value.to_string()))
            }
            _ => {
                return Err(Error::Usage {
                    message: format!("argument `{word}` is not key=value (e.g. older_than=2h)"),
                });
            }
        }
    }
    let args = crate::host::params::apply(&script.name, &declared, given, host.settings())?;
    match host.run_script(&script, args)? {
        Outcome::Value(value) => session.show(&value),
        Outcome::Exit(value) if value.is_int() => {
            eprintln!("{} ended with exit({})", script.name, value);
        }
        Outcome::Exit(value) => session.show(&value),
    }
    Ok(())
}

/// Words of a `:run` line; "…" or '…' keep spaces.
fn split_words(text: &str) -> Result<Vec<String>, Error> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(Error::Usage {
            message: "unterminated quote in the `:run` line".into(),
        });
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// `:vars`: the session's variables (name, type, value on one line) and functions.
fn vars(session: &Session) -> String {
    let mut out = String::new();
    let entries: Vec<(String, String, String)> = session
        .scope
        .iter_raw()
        .filter(|(name, _, _)| *name != "ARGS")
        .map(|(name, _, value)| {
            let shown = crate::repl::render::text(
                value,
                &crate::repl::render::Display {
                    json: true,
                    pager: false,
                    terminal: false,
                    colour: false,
                    expanded: false,
                    utc: false,
                },
            )
            .unwrap_or_else(|| "()\n".into());
            let mut shown = shown.trim_end().to_string();
            if shown.chars().count() > 60 {
                shown = shown.chars().take(59).collect::<String>() + "…";
            }
            let ty = value
                .type_name()
                .rsplit("::")
                .next()
                .unwrap_or("?")
                .to_string();
            (name.to_string(), ty, shown)
        })
        .collect();
    let width = entries.iter().map(|e| e.0.len()).max().unwrap_or(0);
    let twidth = entries.iter().map(|e| e.1.len()).max().unwrap_or(0);
    for (name, ty, shown) in &entries {
        let _ = writeln!(out, "{name:width$}  {ty:twidth$}  {shown}");
    }
    for f in session.host.repl_functions() {
        let _ = writeln!(out, "fn {f}");
    }
    if out.is_empty() {
        out.push_str("no variables or functions yet\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_run_words_with_quotes() {
        assert_eq!(
            split_words(r#"reset-stuck-jobs older_than=2h reason="on call" x='a b'"#).unwrap(),
            [
                "reset-stuck-jobs",
                "older_than=2h",
                "reason=on call",
                "x=a b"
            ]
        );
        assert!(split_words("a \"b").is_err());
    }
}
