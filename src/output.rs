//! What a run prints on stdout: a report, a value, a listing; text or exactly one JSON document.

use std::io::Write;

use rhai::Dynamic;

use crate::config::Settings;
use crate::error::code;
use crate::host::Outcome;
use crate::host::catalog::{Listed, Origin};
use crate::report::Report;

/// Prints a script's outcome and returns the exit code it decides.
pub fn outcome(outcome: Outcome, json: bool) -> u8 {
    match outcome {
        Outcome::Value(value) => value_out(value, json, code::OK),
        Outcome::Exit(value) => {
            if let Ok(n) = value.as_int() {
                if json {
                    println!("{{\"exit_code\":{n}}}");
                }
                return u8::try_from(n).unwrap_or(code::UNKNOWN);
            }
            value_out(value, json, code::OK)
        }
    }
}

fn value_out(value: Dynamic, json: bool, status: u8) -> u8 {
    if let Some(report) = value.clone().try_cast::<Report>() {
        if json {
            println!("{}", report.to_json());
        } else {
            let _ = write!(anstream::stdout(), "{}", report.to_text());
        }
        return report.status().exit_code();
    }
    if json {
        println!(
            "{}",
            serde_json::to_string(&value).unwrap_or_else(|_| "null".into())
        );
    } else if !value.is_unit() {
        println!("{}", display(&value));
    }
    status
}

/// Strings as they are, numbers plainly, maps and arrays as indented JSON.
pub fn display(value: &Dynamic) -> String {
    if value.is_string() {
        return value.to_string();
    }
    if (value.is_map() || value.is_array())
        && let Ok(text) = serde_json::to_string_pretty(value)
    {
        return text;
    }
    value.to_string()
}

pub fn scripts(listed: &[Listed], json: bool) -> u8 {
    if json {
        println!("{}", serde_json::to_string(listed).unwrap_or_default());
        return code::OK;
    }
    let width = listed.iter().map(|l| l.name.len()).max().unwrap_or(0);
    for l in listed {
        let origin = match l.origin {
            Origin::Bundled => "bundled",
            Origin::Site | Origin::File => "site",
        };
        let mut description = match &l.problem {
            Some(problem) => problem.clone(),
            None => l.description.clone(),
        };
        if l.overrides_bundled {
            description.push_str(" [overrides the bundled procedure]");
        }
        println!("{:width$}  {origin:8}  {}", l.name, description.trim_start());
    }
    code::OK
}

pub fn config(settings: &Settings, json: bool) -> u8 {
    let shown = settings.shown();
    if json {
        println!("{}", serde_json::to_string(&shown).unwrap_or_default());
        return code::OK;
    }
    let width = shown.iter().map(|s| s.key.len()).max().unwrap_or(0);
    for s in &shown {
        println!("{:width$} = {:?}  # {}", s.key, s.value, s.source);
    }
    code::OK
}

/// `opsh api`: a listing, or in full when a name was given; JSON or the README's Markdown.
pub fn api(specs: &[&crate::ops::spec::Spec], named: bool, markdown: bool, json: bool) -> u8 {
    if json {
        println!("{}", serde_json::to_string(specs).unwrap_or_default());
    } else if markdown {
        print!("{}", crate::api::markdown(specs));
    } else if named {
        let texts: Vec<String> = specs.iter().map(|s| crate::api::full(s)).collect();
        print!("{}", texts.join("\n"));
    } else {
        print!("{}", crate::api::listing(specs));
    }
    code::OK
}

/// `opsh <procedure> --help`: the description (the header's leading comment) and arguments.
pub fn describe(
    script: &crate::host::catalog::Script,
    declared: &[crate::host::params::Declared],
    json: bool,
) -> u8 {
    let description = crate::host::catalog::describe(&script.source);
    if json {
        let doc = serde_json::json!({
            "name": script.name,
            "origin": script.origin,
            "description": description,
            "arguments": declared,
        });
        println!("{doc}");
        return code::OK;
    }
    println!("{}: {description}\n", script.name);
    println!(
        "Usage: opsh {} [key=value]… [--dry-run] [--yes] [--json]",
        script.name
    );
    if declared.is_empty() {
        println!("\nArguments: none declared");
    } else {
        println!("\nArguments:");
        for d in declared {
            println!("  {}", d.line());
        }
    }
    code::OK
}
