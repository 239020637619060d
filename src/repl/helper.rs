//! The line editor's helper: completion, hints, highlighting and multi-line validation, all read
//! from the registered functions' specs (the same data as `opsh api`).

use std::borrow::Cow;

use rhai::{Engine, LexError, ParseErrorType, Position};
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::{Hint, Hinter};
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Result};

use crate::ops::spec::{Kind, Spec};
use crate::repl::live::{self, Live};

/// The `:` commands, for completion and `:help`.
pub const COMMANDS: &[(&str, &str)] = &[
    (
        ":help",
        "this help; `:help jobs` a module, `:help jobs::list` a function",
    ),
    (":scripts", "the procedures"),
    (":run", "run a procedure: `:run check-jobs key=value …`"),
    (
        ":vars",
        "the variables and functions defined in this session",
    ),
    (
        ":reload",
        "read site scripts again; forget cached completion names",
    ),
    (":json", "`:json on|off`: results as JSON"),
    (":pager", "`:pager on|off`: long results through $PAGER"),
    (
        ":x",
        "`:x [on|off]`: rows one record per block (expanded), or back to tables",
    ),
    (":quit", "leave (Ctrl-D too)"),
];

const KEYWORDS: &[&str] = &[
    "let", "const", "fn", "if", "else", "while", "loop", "for", "in", "do", "until", "break",
    "continue", "return", "throw", "try", "catch", "import", "export", "as", "private", "true",
    "false", "switch", "this", "global",
];

/// A procedure and its declared argument names (`:run` completion).
pub struct Procedure {
    pub name: String,
    pub args: Vec<String>,
}

pub struct OpshHelper {
    specs: Vec<&'static Spec>,
    modules: Vec<&'static str>,
    procedures: Vec<Procedure>,
    /// Variables in the session's scope.
    pub vars: Vec<String>,
    /// Functions defined at the prompt (names).
    pub functions: Vec<String>,
    pub live: Live,
    /// Parses input to tell an unfinished entry from a wrong one.
    engine: Engine,
    colour: bool,
}

impl OpshHelper {
    pub fn new(
        specs: &[&'static Spec],
        procedures: Vec<Procedure>,
        live: Live,
        colour: bool,
    ) -> OpshHelper {
        let mut modules: Vec<&'static str> = specs
            .iter()
            .map(|s| s.module)
            .filter(|m| !m.is_empty())
            .collect();
        modules.sort_unstable();
        modules.dedup();
        let engine = parser();
        OpshHelper {
            specs: specs.to_vec(),
            modules,
            procedures,
            vars: Vec::new(),
            functions: Vec::new(),
            live,
            engine,
            colour,
        }
    }

    pub fn set_procedures(&mut self, procedures: Vec<Procedure>) {
        self.procedures = procedures;
    }

    /// The candidates for the text before the cursor: where they start, and the candidates.
    pub fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<Pair>) {
        let text = &line[..pos];
        if text.trim_start().starts_with(':') {
            return self.command_candidates(text);
        }
        let scan = scan(text);
        if let Some(start) = scan.string {
            return self.string_candidates(text, start, &scan);
        }
        let word_start = text
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .map_or(0, |i| i + 1);
        let word = &text[word_start..];
        let before = text[..word_start].trim_end();
        // An option name inside `f(#{`.
        if let Some(&(Open::Map, map_at, _)) = scan.stack.last()
            && (before.ends_with("#{") || before.ends_with(','))
            && let Some(spec) = self.callee_of_map(text, map_at, &scan)
        {
            let given = &text[map_at..word_start];
            let out = spec
                .options
                .iter()
                .filter(|o| o.name.starts_with(word) && !given.contains(&format!("{}:", o.name)))
                .map(|o| {
                    pair(
                        &format!("{}: {}", o.name, o.kind.name()),
                        format!("{}: ", o.name),
                    )
                })
                .collect();
            return (word_start, out);
        }
        // A method of a report: `r.ok(`.
        if text[..word_start].ends_with('.') {
            let out = self
                .specs
                .iter()
                .filter(|s| is_method(s) && s.name.starts_with(word))
                .map(|s| pair(&shown(s), format!("{}(", s.name)))
                .collect();
            return (word_start, dedup(out));
        }
        // `jobs::re` → the module's functions.
        if let Some((module, prefix)) = word.rsplit_once("::") {
            let out = self
                .specs
                .iter()
                .filter(|s| s.module == module && s.name.starts_with(prefix))
                .map(|s| pair(&shown(s), call_text(s)))
                .collect();
            return (pos - prefix.len(), dedup(out));
        }
        let mut out: Vec<Pair> = Vec::new();
        for m in &self.modules {
            if m.starts_with(word) {
                out.push(pair(&format!("{m}::"), format!("{m}::")));
            }
        }
        for s in &self.specs {
            if s.module.is_empty() && !is_method(s) && s.name.starts_with(word) {
                out.push(pair(&shown(s), call_text(s)));
            }
        }
        for f in &self.functions {
            if f.starts_with(word) {
                out.push(pair(f, format!("{f}(")));
            }
        }
        for v in &self.vars {
            if v.starts_with(word) {
                out.push(pair(v, v.clone()));
            }
        }
        if !word.is_empty() {
            for k in KEYWORDS {
                if k.starts_with(word) {
                    out.push(pair(k, format!("{k} ")));
                }
            }
        }
        (word_start, dedup(out))
    }

    fn command_candidates(&self, text: &str) -> (usize, Vec<Pair>) {
        let start = text.len() - text.trim_start().len();
        let words: Vec<&str> = text[start..].split_whitespace().collect();
        let last_start = if text.ends_with(char::is_whitespace) {
            text.len()
        } else {
            text.rfind(char::is_whitespace).map_or(start, |i| i + 1)
        };
        let current = &text[last_start..];
        // The command word itself.
        if last_start == start {
            let out = COMMANDS
                .iter()
                .filter(|(c, _)| c.starts_with(current))
                .map(|(c, _)| pair(c, format!("{c} ")))
                .collect();
            return (start, out);
        }
        let argument = words.len() - usize::from(!text.ends_with(char::is_whitespace));
        let options: Vec<(String, String)> = match (words[0], argument) {
            (":run", 1) => self
                .procedures
                .iter()
                .map(|p| (p.name.clone(), format!("{} ", p.name)))
                .collect(),
            (":run", _) => self
                .procedures
                .iter()
                .find(|p| p.name == words[1])
                .map(|p| {
                    p.args
                        .iter()
                        .filter(|a| !words[2..].iter().any(|w| w.starts_with(&format!("{a}="))))
                        .map(|a| (format!("{a}="), format!("{a}=")))
                        .collect()
                })
                .unwrap_or_default(),
            (":help", 1) => {
                let mut names: Vec<(String, String)> = self
                    .modules
                    .iter()
                    .map(|m| (format!("{m}::"), format!("{m}::")))
                    .collect();
                names.extend(self.specs.iter().map(|s| (s.path(), s.path())));
                names
            }
            (":json" | ":pager" | ":x", 1) => ["on", "off"]
                .iter()
                .map(|w| (w.to_string(), w.to_string()))
                .collect(),
            _ => Vec::new(),
        };
        let out = options
            .into_iter()
            .filter(|(d, _)| d.starts_with(current))
            .map(|(d, r)| Pair {
                display: d,
                replacement: r,
            })
            .collect();
        (last_start, dedup(out))
    }

    /// Inside a string literal: live names for the parameter or option it is the value of, or
    /// table names after FROM/JOIN in `db::query("…`.
    fn string_candidates(&self, text: &str, start: usize, scan: &Scan) -> (usize, Vec<Pair>) {
        let quote = &text[start..start + 1];
        let inside = &text[start + 1..];
        let before = text[..start].trim_end();
        let mut source = None;
        let mut sql = false;
        if let Some(key_end) = before.strip_suffix(':') {
            // `#{job_type: "…`: the option's name decides.
            let key = trailing_ident(key_end.trim_end());
            if let Some(&(Open::Map, map_at, _)) = scan.stack.last()
                && let Some(spec) = self.callee_of_map(text, map_at, scan)
                && spec.options.iter().any(|o| o.name == key)
            {
                source = live::source_for(key);
            }
        } else if (before.ends_with('(') || before.ends_with(','))
            && let Some(&(Open::Paren, paren_at, commas)) = scan.stack.last()
            && let Some(spec) = self.callee(text, paren_at)
        {
            let params: Vec<_> = spec
                .params
                .iter()
                .filter(|p| p.kind != Kind::Report)
                .collect();
            if spec.path() == "db::query" && commas == 0 {
                sql = true;
            } else if let Some(p) = params.get(commas) {
                source = live::source_for(p.name);
            }
        }
        if sql {
            let word_start = inside
                .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            let previous = inside[..word_start]
                .split_whitespace()
                .last()
                .unwrap_or("")
                .to_ascii_lowercase();
            if !matches!(
                previous.as_str(),
                "from" | "join" | "update" | "into" | "table"
            ) {
                return (0, Vec::new());
            }
            let prefix = &inside[word_start..];
            let Some(tables) = live::source_for("table") else {
                return (0, Vec::new());
            };
            let out = self
                .live
                .names(tables)
                .iter()
                .filter(|n| n.starts_with(prefix))
                .map(|n| pair(n, n.clone()))
                .collect();
            return (start + 1 + word_start, out);
        }
        let Some(source) = source else {
            return (0, Vec::new());
        };
        let out = self
            .live
            .names(source)
            .iter()
            .filter(|n| n.starts_with(inside))
            .map(|n| pair(n, format!("{n}{quote}")))
            .collect();
        (start + 1, out)
    }

    /// The function whose call's `(` is at `paren_at`.
    fn callee(&self, text: &str, paren_at: usize) -> Option<&'static Spec> {
        let head = &text[..paren_at];
        let name_start = head
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .map_or(0, |i| i + 1);
        let name = &head[name_start..];
        if name.is_empty() {
            return None;
        }
        let method = head[..name_start].ends_with('.');
        self.specs.iter().copied().find(|s| {
            if method {
                is_method(s) && s.name == name
            } else {
                s.path() == name
            }
        })
    }

    /// The function whose options map `#{` opens at `map_at`: `f(#{` or `f(x, #{`.
    fn callee_of_map(&self, text: &str, map_at: usize, scan: &Scan) -> Option<&'static Spec> {
        let n = scan.stack.len();
        let &(open, paren_at, _) = scan.stack.get(n.checked_sub(2)?)?;
        let between = text[paren_at + 1..map_at].trim();
        if open != Open::Paren || !(between.is_empty() || between.ends_with(',')) {
            return None;
        }
        self.callee(text, paren_at)
    }

    /// The hint for the text before the cursor: the signature of the call being typed, or the
    /// options of the map being typed.
    pub fn hint_text(&self, line: &str, pos: usize) -> Option<String> {
        if pos < line.len() || line.trim_start().starts_with(':') || line.trim().is_empty() {
            return None;
        }
        let scan = scan(line);
        for (i, &(open, at, _)) in scan.stack.iter().enumerate().rev() {
            match open {
                Open::Paren => {
                    if let Some(spec) = self.callee(line, at) {
                        return Some(format!("  {}", spec.signature()));
                    }
                }
                Open::Map if i + 1 == scan.stack.len() && scan.string.is_none() => {
                    if let Some(spec) = self.callee_of_map(line, at, &scan)
                        && !spec.options.is_empty()
                    {
                        let given = &line[at..];
                        let names: Vec<String> = spec
                            .options
                            .iter()
                            .filter(|o| !given.contains(&format!("{}:", o.name)))
                            .map(|o| format!("{}: {}", o.name, o.kind.name()))
                            .collect();
                        if names.is_empty() {
                            return None;
                        }
                        return Some(format!("  {}", names.join(", ")));
                    }
                }
                _ => {}
            }
        }
        // A complete function name not yet called: `jobs::list`.
        let word_start = line
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .map_or(0, |i| i + 1);
        let word = &line[word_start..];
        if word.contains("::")
            && let Some(spec) = self.specs.iter().find(|s| s.path() == word)
        {
            return Some(format!("  {}", spec.signature()));
        }
        None
    }

    /// True when the parser says the entry is unfinished (an open brace, bracket or string).
    pub fn is_incomplete(&self, code: &str) -> bool {
        incomplete(&self.engine, code)
    }
}

fn pair(display: &str, replacement: String) -> Pair {
    Pair {
        display: display.to_string(),
        replacement,
    }
}

fn dedup(mut out: Vec<Pair>) -> Vec<Pair> {
    out.sort_by(|a, b| a.display.cmp(&b.display));
    out.dedup_by(|a, b| a.display == b.display);
    out
}

/// Report methods (`r.ok(…)`) are specs whose first parameter is the report.
fn is_method(s: &Spec) -> bool {
    s.params.first().is_some_and(|p| p.kind == Kind::Report)
}

/// How a function is listed among candidates: `stuck_after(procedure)`, `list(options?)`.
fn shown(s: &Spec) -> String {
    let mut params: Vec<String> = s
        .params
        .iter()
        .filter(|p| p.kind != Kind::Report)
        .map(|p| format!("{}{}", p.name, if p.optional { "?" } else { "" }))
        .collect();
    if !s.options.is_empty() {
        params.push("options?".into());
    }
    format!("{}({})", s.name, params.join(", "))
}

/// What completing a function inserts: `name(`, or `name()` when it takes nothing.
fn call_text(s: &Spec) -> String {
    if s.params.is_empty() && s.options.is_empty() {
        format!("{}()", s.name)
    } else {
        format!("{}(", s.name)
    }
}

fn trailing_ident(text: &str) -> &str {
    let start = text
        .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
        .map_or(0, |i| i + 1);
    &text[start..]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Paren,
    Bracket,
    Brace,
    Map,
}

/// What is open at the end of a text: brackets (kind, byte offset, commas seen at that level)
/// and an unfinished string literal (byte offset of its quote).
#[derive(Debug, Default)]
struct Scan {
    stack: Vec<(Open, usize, usize)>,
    string: Option<usize>,
}

fn scan(text: &str) -> Scan {
    let b = text.as_bytes();
    let mut s = Scan::default();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = text[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 1);
            }
            q @ (b'"' | b'`' | b'\'') => {
                let start = i;
                i += 1;
                loop {
                    if i >= b.len() {
                        s.string = Some(start);
                        return s;
                    }
                    if b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if b[i] == q {
                        break;
                    }
                    i += 1;
                }
            }
            b'#' if b.get(i + 1) == Some(&b'{') => {
                s.stack.push((Open::Map, i, 0));
                i += 1;
            }
            b'(' => s.stack.push((Open::Paren, i, 0)),
            b'[' => s.stack.push((Open::Bracket, i, 0)),
            b'{' => s.stack.push((Open::Brace, i, 0)),
            b')' | b']' | b'}' => {
                s.stack.pop();
            }
            b',' => {
                if let Some(top) = s.stack.last_mut() {
                    top.2 += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    s
}

/// Whether Rhai's parser stops at the end of the input (more is to come) rather than at a wrong
/// token inside it: an open brace, bracket, call or map, an operator with no right side, or a
/// backtick string (or a `"` string continued with a trailing backslash).
pub fn incomplete(engine: &Engine, code: &str) -> bool {
    let Some((last_line, last_col)) = last_char(code) else {
        return false;
    };
    let Err(err) = engine.compile(code) else {
        return false;
    };
    let pos = err.position();
    match err.err_type() {
        ParseErrorType::BadInput(LexError::UnterminatedString) => string_continues(code, pos),
        ParseErrorType::UnexpectedEOF if pos.is_none() => true,
        _ => match (pos.line(), pos.position()) {
            (Some(line), Some(col)) => (line, col) > (last_line, last_col),
            (Some(line), None) => line > last_line,
            _ => false,
        },
    }
}

/// Line and column (1-based, in characters) of the last non-blank character.
fn last_char(code: &str) -> Option<(usize, usize)> {
    let trimmed = code.trim_end();
    if trimmed.is_empty() {
        return None;
    }
    let line = trimmed.matches('\n').count() + 1;
    let col = trimmed.rsplit('\n').next().unwrap_or("").chars().count();
    Some((line, col))
}

/// An unterminated string goes on at the next line when it is a backtick string, or a `"`
/// string whose line ends in a backslash.
fn string_continues(code: &str, pos: Position) -> bool {
    let (Some(line), Some(col)) = (pos.line(), pos.position()) else {
        return false;
    };
    let Some(text) = code.split('\n').nth(line - 1) else {
        return false;
    };
    match text.chars().nth(col - 1) {
        Some('`') => true,
        Some('"') => code.trim_end_matches([' ', '\t']).ends_with('\\'),
        _ => false,
    }
}

/// An engine that only parses, for [`incomplete`]: the host's tokenizer change, no functions.
pub fn parser() -> Engine {
    let mut engine = Engine::new_raw();
    allow_new_as_name(&mut engine);
    engine
}

#[allow(deprecated)] // on_parse_token is marked volatile, not deprecated
fn allow_new_as_name(engine: &mut Engine) {
    engine.on_parse_token(|token, _, _| match token {
        rhai::Token::Reserved(name) if name.as_str() == "new" => rhai::Token::Identifier(name),
        other => other,
    });
}

impl Completer for OpshHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> Result<(usize, Vec<Pair>)> {
        Ok(self.candidates(line, pos))
    }
}

/// A hint that only shows: accepting it inserts nothing.
pub struct ShownHint(String);

impl Hint for ShownHint {
    fn display(&self) -> &str {
        &self.0
    }

    fn completion(&self) -> Option<&str> {
        None
    }
}

impl Hinter for OpshHelper {
    type Hint = ShownHint;

    fn hint(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> Option<ShownHint> {
        let text = self.hint_text(line, pos)?;
        // One screen line: what fits after the prompt and the text typed on this line.
        let columns = terminal_size::terminal_size().map_or(80, |(w, _)| usize::from(w.0));
        let typed = crate::repl::prompt().chars().count()
            + line.rsplit('\n').next().unwrap_or("").chars().count();
        let room = columns.saturating_sub(typed + 1);
        if room < 12 {
            return None;
        }
        if text.chars().count() <= room {
            return Some(ShownHint(text));
        }
        let cut: String = text.chars().take(room - 1).collect();
        Some(ShownHint(cut + "…"))
    }
}

impl Validator for OpshHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> Result<ValidationResult> {
        let input = ctx.input();
        if input.trim_start().starts_with(':') || !self.is_incomplete(input) {
            Ok(ValidationResult::Valid(None))
        } else {
            Ok(ValidationResult::Incomplete)
        }
    }
}

impl Highlighter for OpshHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        if !self.colour {
            return Cow::Borrowed(line);
        }
        Cow::Owned(highlight(line))
    }

    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        if !self.colour {
            return Cow::Borrowed(hint);
        }
        let dim = anstyle::Style::new().dimmed();
        Cow::Owned(format!("{dim}{hint}{dim:#}"))
    }

    fn highlight_char(&self, _line: &str, _pos: usize, kind: CmdKind) -> bool {
        self.colour && kind != CmdKind::MoveCursor
    }
}

impl rustyline::Helper for OpshHelper {}

/// Rhai source with ANSI colours: keywords, strings, numbers, module paths, comments.
pub fn highlight(line: &str) -> String {
    use anstyle::{AnsiColor, Style};
    let keyword = Style::new()
        .fg_color(Some(AnsiColor::Magenta.into()))
        .bold();
    let string = Style::new().fg_color(Some(AnsiColor::Green.into()));
    let number = Style::new().fg_color(Some(AnsiColor::Cyan.into()));
    let module = Style::new().fg_color(Some(AnsiColor::Blue.into()));
    let comment = Style::new().dimmed();
    let paint = |out: &mut String, style: Style, text: &str| {
        out.push_str(&format!("{style}{text}{style:#}"));
    };
    let b = line.as_bytes();
    let mut out = String::with_capacity(line.len() * 2);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            let end = line[i..].find('\n').map_or(b.len(), |e| i + e);
            paint(&mut out, comment, &line[start..end]);
            i = end;
        } else if matches!(c, b'"' | b'`' | b'\'') {
            i += 1;
            while i < b.len() && b[i] != c {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(b.len());
            paint(&mut out, string, &line[start..i]);
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                i += 1;
            }
            paint(&mut out, number, &line[start..i]);
        } else if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let word = &line[start..i];
            if line[i..].starts_with("::") {
                i += 2;
                paint(&mut out, module, &line[start..i]);
            } else if KEYWORDS.contains(&word) {
                paint(&mut out, keyword, word);
            } else {
                out.push_str(word);
            }
        } else {
            let len = line[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&line[i..i + len]);
            i += len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_unfinished_input_from_wrong_input() {
        let e = Engine::new_raw();
        for code in [
            "fn tri(n) {",
            "let a = [1,\n2",
            "jobs::list(#{",
            "1 +",
            "foo(1,",
            "let s = `abc",
            "let s = \"abc\\",
            "if x { 1 } else",
        ] {
            assert!(incomplete(&e, code), "{code:?} is unfinished");
        }
        for code in [
            "1 )",
            "let = 3",
            "let s = \"abc",
            "fn f() { let x = }",
            "1 + 1",
            "",
        ] {
            assert!(!incomplete(&e, code), "{code:?} is complete or wrong");
        }
    }

    #[test]
    fn scans_open_brackets_and_strings() {
        let s = scan(r#"jobs::list(#{status: "pe"#);
        assert_eq!(s.string, Some(21));
        assert_eq!(
            s.stack.iter().map(|x| x.0).collect::<Vec<_>>(),
            [Open::Paren, Open::Map]
        );
        assert!(scan("f(\"(\", [1, 2])").stack.is_empty());
    }

    use crate::ops::spec::{Default, Opt, Param};

    static LIST: Spec = Spec {
        module: "jobs",
        name: "list",
        params: &[],
        options: &[
            Opt::new("status", Kind::Str, Default::None, "status"),
            Opt::new("job_type", Kind::Strings, Default::None, "types"),
            Opt::new("limit", Kind::Int, Default::Value("100"), "limit"),
        ],
        returns: "Array",
        doc: "Jobs.",
        examples: &[],
    };
    static QUERY: Spec = Spec {
        module: "db",
        name: "query",
        params: &[
            Param::new("sql", Kind::Str, "sql"),
            Param::optional("params", Kind::Array, "params"),
        ],
        options: &[],
        returns: "Array",
        doc: "Rows.",
        examples: &[],
    };

    fn helper() -> OpshHelper {
        let live = Live::new(None);
        live.preset("job types", &["transcribe", "summarize"]);
        live.preset("tables", &["processing_jobs", "opsh_audit"]);
        let procedures = vec![Procedure {
            name: "reset-stuck-jobs".into(),
            args: vec!["older_than".into(), "max_retries".into()],
        }];
        let mut h = OpshHelper::new(&[&LIST, &QUERY], procedures, live, false);
        h.vars = vec!["jobs_before".into()];
        h
    }

    fn shown(h: &OpshHelper, line: &str) -> (usize, Vec<String>) {
        let (start, c) = h.candidates(line, line.len());
        (start, c.into_iter().map(|p| p.replacement).collect())
    }

    #[test]
    fn completes_from_the_specs_the_session_and_live_names() {
        let h = helper();
        assert_eq!(shown(&h, "jobs::l"), (6, vec!["list(".to_string()]));
        assert_eq!(
            shown(&h, "jo"),
            (0, vec!["jobs::".to_string(), "jobs_before".to_string()])
        );
        // Option names not yet given.
        assert_eq!(
            shown(&h, "jobs::list(#{status: \"x\", "),
            (26, vec!["job_type: ".to_string(), "limit: ".to_string()])
        );
        // Live names inside the option's string, closed with its quote.
        assert_eq!(
            shown(&h, "jobs::list(#{job_type: \"tr"),
            (24, vec!["transcribe\"".to_string()])
        );
        // Tables after FROM in db::query's SQL, not elsewhere in it.
        assert_eq!(
            shown(&h, "db::query(\"SELECT * FROM pro"),
            (25, vec!["processing_jobs".to_string()])
        );
        assert_eq!(shown(&h, "db::query(\"SELECT pro").1, Vec::<String>::new());
        // Commands, procedures and their declared arguments.
        assert_eq!(shown(&h, ":ru"), (0, vec![":run ".to_string()]));
        assert_eq!(
            shown(&h, ":run res"),
            (5, vec!["reset-stuck-jobs ".to_string()])
        );
        assert_eq!(
            shown(&h, ":run reset-stuck-jobs older_than=2h m"),
            (36, vec!["max_retries=".to_string()])
        );
    }

    #[test]
    fn hints_show_the_signature_or_the_options_left() {
        let h = helper();
        assert_eq!(
            h.hint_text("db::query(\"SELECT 1\", ", 22).as_deref(),
            Some("  db::query(sql: string, params?: array) -> Array")
        );
        assert_eq!(
            h.hint_text("jobs::list(#{limit: 5, ", 23).as_deref(),
            Some("  status: string, job_type: string|array")
        );
        assert_eq!(h.hint_text("1 + ", 4), None);
    }

    #[test]
    fn highlights_keywords_strings_numbers_and_modules() {
        let plain = highlight(r#"let x = jobs::list(#{limit: 5}); "s""#);
        assert_eq!(
            anstream::adapter::strip_str(&plain).to_string(),
            r#"let x = jobs::list(#{limit: 5}); "s""#
        );
        assert!(plain.contains("\u{1b}["));
    }
}
