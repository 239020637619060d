//! Renders parse and runtime errors as `path:line:column`, the source line and a caret, naming
//! the imported module's file when the error is inside one.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::rc::Rc;

use rhai::{EvalAltResult, ParseError, Position};

/// The source text of every script and module compiled in this process, by display name, so an
/// error can quote the line it points at.
#[derive(Default, Clone)]
pub struct Sources(Rc<RefCell<HashMap<String, Rc<str>>>>);

impl Sources {
    pub fn add(&self, name: &str, text: &str) {
        self.0.borrow_mut().insert(name.to_string(), Rc::from(text));
    }

    fn get(&self, name: &str) -> Option<Rc<str>> {
        self.0.borrow().get(name).cloned()
    }

    pub fn parse_error(&self, file: &str, err: &ParseError) -> String {
        self.frame(
            &format!("syntax error: {}", err.err_type()),
            file,
            err.position(),
            &[],
        )
    }

    pub fn runtime_error(&self, file: &str, err: &EvalAltResult) -> String {
        let (message, file, pos, trail) = innermost(err, file);
        self.frame(&message, &file, pos, &trail)
    }

    fn frame(&self, message: &str, file: &str, pos: Position, trail: &[String]) -> String {
        // Printed after opsh's one error prefix (output::error): `opsh: error: <message>`.
        let mut out = format!("{message}\n");
        let (Some(line), Some(col)) = (pos.line(), pos.position().or(Some(1))) else {
            let _ = writeln!(out, "  --> {file}");
            return out;
        };
        let _ = writeln!(out, "  --> {file}:{line}:{col}");
        if let Some(text) = self
            .get(file)
            .and_then(|src| src.lines().nth(line - 1).map(String::from))
        {
            let number = line.to_string();
            let pad = " ".repeat(number.len());
            // Tabs would shift the caret; show them as single spaces.
            let shown = text.replace('\t', " ");
            let _ = writeln!(out, " {pad} |");
            let _ = writeln!(out, " {number} | {shown}");
            let _ = writeln!(out, " {pad} | {}^", " ".repeat(col.saturating_sub(1)));
        }
        for note in trail {
            let _ = writeln!(out, "  = {note}");
        }
        out
    }
}

/// Walks down through function-call and module wrappers to the error that caused it all,
/// remembering the file it happened in and where it was called from.
fn innermost(err: &EvalAltResult, file: &str) -> (String, String, Position, Vec<String>) {
    let mut file = file.to_string();
    let mut pos = err.position();
    let mut trail = Vec::new();
    let mut current = err;
    loop {
        match current {
            EvalAltResult::ErrorInFunctionCall(name, source, inner, call_pos) => {
                if inner.position().is_none() {
                    // A host function failed: the call site is the place to show.
                    pos = *call_pos;
                    current = inner;
                    break;
                }
                trail.push(format!("in call to `{name}` at {file}:{}", at(*call_pos)));
                if !source.is_empty() {
                    file = source.clone();
                }
                pos = inner.position();
                current = inner;
            }
            EvalAltResult::ErrorInModule(module, inner, import_pos) => {
                trail.push(format!(
                    "in module `{module}`, imported at {file}:{}",
                    at(*import_pos)
                ));
                file = module.clone();
                pos = inner.position();
                current = inner;
            }
            _ => break,
        }
    }
    if pos.is_none() {
        pos = current.position();
    }
    trail.reverse();
    (message(current), file, pos, trail)
}

fn at(pos: Position) -> String {
    match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => format!("{l}:{c}"),
        (Some(l), None) => l.to_string(),
        _ => "?".into(),
    }
}

/// The error's own words, without Rhai's "(line 3, position 5)" suffix.
pub fn message(err: &EvalAltResult) -> String {
    match err {
        EvalAltResult::ErrorRuntime(value, _) => {
            if let Some(failure) = value.read_lock::<crate::ops::error::OpFailure>() {
                return failure.to_string();
            }
            value.to_string()
        }
        EvalAltResult::ErrorParsing(kind, _) => format!("syntax error: {kind}"),
        other => {
            let text = other.to_string();
            match (other.position().is_none(), text.rfind(" (line ")) {
                (false, Some(at)) => text[..at].to_string(),
                _ => text,
            }
        }
    }
}
