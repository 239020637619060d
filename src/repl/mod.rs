//! The interactive shell. A plain rustyline loop for now: every line is evaluated in one scope,
//! so variables and functions persist; errors are shown and the session goes on.

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::error::code;
use crate::host::{Host, Outcome};

pub fn run(host: &mut Host) -> u8 {
    let mut editor = match DefaultEditor::new() {
        Ok(editor) => editor,
        Err(e) => {
            crate::output::err(&format!("opsh: error: cannot start the line editor: {e}\n"));
            return code::UNKNOWN;
        }
    };
    let mut scope = Host::scope(rhai::Map::new());
    loop {
        match editor.readline("opsh> ") {
            Ok(line) => {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(line);
                if matches!(line, ":q" | ":quit" | "exit") {
                    break;
                }
                match host.eval_repl(&mut scope, line) {
                    Ok(Outcome::Value(value)) if !value.is_unit() => {
                        crate::output::outcome(Outcome::Value(value), false);
                    }
                    Ok(Outcome::Value(_)) => {}
                    Ok(exit @ Outcome::Exit(_)) => return crate::output::outcome(exit, false),
                    Err(e) => {
                        let text = e.to_string();
                        if text.starts_with("error:") {
                            crate::output::err(&text);
                        } else {
                            crate::output::err(&format!("error: {text}\n"));
                        }
                    }
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                crate::output::err(&format!("opsh: error: {e}\n"));
                return code::UNKNOWN;
            }
        }
    }
    code::OK
}
