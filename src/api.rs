//! `opsh api`: the registered functions as their specs describe them — a listing, one
//! function in full, JSON for editors and completion scripts, and the README's API section.

use std::fmt::Write;

use crate::error::Error;
use crate::ops::spec::{Spec, default_text};

/// The specs `name` selects: one function (`jobs::reset_stuck`), a module (`jobs`), or all.
pub fn select<'a>(specs: &[&'a Spec], name: Option<&str>) -> Result<Vec<&'a Spec>, Error> {
    let Some(name) = name else {
        return Ok(specs.to_vec());
    };
    let name = name.trim_end_matches("::");
    let chosen: Vec<&Spec> = specs
        .iter()
        .copied()
        .filter(|s| s.path() == name || s.module == name)
        .collect();
    if chosen.is_empty() {
        let paths: Vec<String> = specs.iter().map(|s| s.path()).collect();
        let hint = match crate::suggest::ranked(name, paths.iter().map(String::as_str)).first() {
            Some(s) => format!("did you mean `{s}`? "),
            None => String::new(),
        };
        return Err(Error::Usage {
            message: format!("no function or module `{name}`; {hint}`opsh api` lists them"),
        });
    }
    // Several overloads share one spec: show it once.
    let mut seen: Vec<&Spec> = Vec::new();
    for s in chosen {
        if !seen.iter().any(|t| std::ptr::eq(*t, s)) {
            seen.push(s);
        }
    }
    Ok(seen)
}

/// One line a function: its signature and the first sentence of its description.
pub fn listing(specs: &[&Spec]) -> String {
    let width = specs.iter().map(|s| s.signature().len()).max().unwrap_or(0);
    let mut out = String::new();
    for s in specs {
        let _ = writeln!(out, "{:width$}  {}", s.signature(), first_sentence(s.doc));
    }
    out
}

/// A function in full: signature, description, parameters, options, examples.
pub fn full(spec: &Spec) -> String {
    let mut out = format!("{}\n\n{}\n", spec.signature(), wrap(spec.doc, "  "));
    if !spec.params.is_empty() {
        out.push_str("\nParameters:\n");
        for p in spec.params {
            let _ = writeln!(out, "  {}: {} — {}", p.name, p.kind.name(), p.doc);
        }
    }
    if !spec.options.is_empty() {
        out.push_str("\nOptions:\n");
        for o in spec.options {
            let _ = writeln!(
                out,
                "  {}: {}{} — {}",
                o.name,
                o.kind.name(),
                default_text(o.default),
                o.doc
            );
        }
    }
    for e in spec.examples {
        let _ = write!(out, "\nExample:\n  {}\n  → {}\n", e.code, e.expect);
    }
    out
}

/// The README's API section, generated so it cannot drift from the binary.
pub fn markdown(specs: &[&Spec]) -> String {
    let mut out = String::new();
    let mut module = None;
    for s in specs {
        if module != Some(s.module) {
            module = Some(s.module);
            let title = if s.module.is_empty() {
                "Globals and report methods".to_string()
            } else {
                format!("`{}::`", s.module)
            };
            let _ = write!(
                out,
                "\n#### {title}\n\n| function | what it does |\n|---|---|\n"
            );
        }
        let mut what = s.doc.split_whitespace().collect::<Vec<_>>().join(" ");
        if !s.options.is_empty() {
            let opts: Vec<String> = s
                .options
                .iter()
                .map(|o| format!("`{}`{}", o.name, default_text(o.default)))
                .collect();
            let _ = write!(what, " Options: {}.", opts.join(", "));
        }
        let _ = writeln!(
            out,
            "| `{}` | {} |",
            s.signature().replace('|', "\\|"),
            what.replace('|', "\\|")
        );
    }
    out
}

fn first_sentence(doc: &str) -> String {
    let text = doc.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.find(". ") {
        Some(end) => text[..=end].to_string(),
        None => text,
    }
}

fn wrap(doc: &str, indent: &str) -> String {
    let words: Vec<&str> = doc.split_whitespace().collect();
    let mut out = String::new();
    let mut line = String::new();
    for w in words {
        if !line.is_empty() && line.len() + w.len() + 1 > 96 {
            let _ = writeln!(out, "{indent}{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    if !line.is_empty() {
        let _ = write!(out, "{indent}{line}");
    }
    out
}
