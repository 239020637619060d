//! What a run prints on stdout: a report, a value, a listing; text or exactly one JSON document.
//!
//! The rendering of a run's results sits here, above the host whose outcomes it prints; the
//! writing itself is [`stream`], below the host, which writes a script's `print` through it.

pub mod envelope;
pub mod nagios;
pub mod procedures;
pub mod prometheus;
pub mod ran;
pub mod stream;
pub mod table;

pub use ran::Ran;
pub use stream::{CLOSED_STDOUT, err, failed, out, out_styled};

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU8, Ordering};

use rhai::Dynamic;

use crate::config::Settings;
use crate::error::{Error, code};
use crate::host::Outcome;
use crate::host::catalog::{Listed, Origin};
use crate::report::{Marks, Report};

/// `output.emoji` (--emoji) as the run chose it: 0 auto, 1 always, 2 never.
static EMOJI: AtomicU8 = AtomicU8::new(0);

/// Takes the run's `output.emoji` setting: auto, always or never.
pub fn set_emoji(setting: &str) {
    let choice = match setting {
        "always" => 1,
        "never" => 2,
        _ => 0,
    };
    EMOJI.store(choice, Ordering::SeqCst);
}

/// How text marks statuses for a reader: emoji for a terminal (`to_terminal`) unless
/// `output.emoji = "never"`, words for a pipe or a file unless `"always"`.
pub fn marks(to_terminal: bool) -> Marks {
    match EMOJI.load(Ordering::SeqCst) {
        1 => Marks::Emoji,
        2 => Marks::Words,
        _ if to_terminal => Marks::Emoji,
        _ => Marks::Words,
    }
}

pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// The marks for text on stdout.
pub fn stdout_marks() -> Marks {
    marks(stdout_is_terminal())
}

/// Prints an error on stderr, once, with opsh's one prefix: `opsh: error: …` (a script error's
/// location and source line follow on the next lines). Secrets are masked.
pub fn error(e: &Error) {
    // Stdout went away: nothing to say, the exit status says it.
    if matches!(e, Error::Output { .. }) {
        return;
    }
    let text = e.to_string();
    let text = text.strip_prefix("opsh: error: ").unwrap_or(&text);
    let mut line = format!("opsh: error: {text}");
    if !line.ends_with('\n') {
        line.push('\n');
    }
    let mut stderr = anstream::stderr();
    let _ = std::io::Write::write_all(&mut stderr, crate::redact::text(&line).as_bytes());
}

/// Prints a script's outcome and returns the exit code it decides.
pub fn outcome(outcome: Outcome, json: bool) -> u8 {
    match outcome {
        Outcome::Value(value) => value_out(value, json, code::OK),
        Outcome::Exit(value) => {
            if let Ok(n) = value.as_int() {
                if json {
                    out(&format!("{{\"exit_code\":{n}}}\n"));
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
            out(&format!("{}\n", report.to_json()));
        } else {
            out_styled(&report.to_text(stdout_marks()));
        }
        return report.status().exit_code();
    }
    if json {
        let doc = serde_json::to_string(&value).unwrap_or_else(|_| "null".into());
        out(&format!("{doc}\n"));
    } else if !value.is_unit() {
        out(&format!("{}\n", display(&value)));
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
        out(&format!(
            "{}\n",
            serde_json::to_string(listed).unwrap_or_default()
        ));
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
        out(&format!(
            "{:width$}  {origin:8}  {}\n",
            l.name,
            description.trim_start()
        ));
    }
    code::OK
}

pub fn config(settings: &Settings, json: bool) -> u8 {
    let shown = settings.shown();
    let files: Vec<String> = settings
        .files_read()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let dotenv = settings.dotenv_read().map(|p| p.display().to_string());
    if json {
        let doc = serde_json::json!({ "files": files, "env_file": dotenv, "settings": shown });
        out(&format!("{doc}\n"));
        return code::OK;
    }
    let width = shown.iter().map(|s| s.key.len()).max().unwrap_or(0);
    let mut text = String::new();
    // Which files were read: the first question when a value is not what was expected.
    text.push_str(&match files.as_slice() {
        [] => "# configuration files: none\n".to_string(),
        files => format!("# configuration files: {}\n", files.join(", ")),
    });
    text.push_str(&format!(
        "# .env: {}\n",
        dotenv.as_deref().unwrap_or("none")
    ));
    for s in &shown {
        text.push_str(&format!(
            "{:width$} = {:?}  # {}\n",
            s.key, s.value, s.source
        ));
    }
    out(&text);
    code::OK
}

/// `opsh api`: a listing, or in full when a name was given; JSON or the README's Markdown.
pub fn api(specs: &[&crate::ops::spec::Spec], named: bool, markdown: bool, json: bool) -> u8 {
    if json {
        out(&format!(
            "{}\n",
            serde_json::to_string(specs).unwrap_or_default()
        ));
    } else if markdown {
        out(&crate::api::markdown(specs));
    } else if named {
        let texts: Vec<String> = specs.iter().map(|s| crate::api::full(s)).collect();
        out(&texts.join("\n"));
    } else {
        out(&crate::api::listing(specs));
    }
    code::OK
}

/// `opsh <procedure> --help`: the description (the header's leading comment) and arguments.
pub fn describe(
    script: &crate::host::catalog::Script,
    declared: &[crate::host::params::Declared],
    settings: &Settings,
    json: bool,
) -> u8 {
    let description = crate::host::catalog::describe(&script.source);
    if json {
        let arguments: Vec<serde_json::Value> = declared
            .iter()
            .map(|d| {
                let mut v = serde_json::to_value(d).unwrap_or_default();
                if let Some((value, from)) = d.resolved_default(settings) {
                    v["default_value"] = value.into();
                    v["default_from"] = from.into();
                }
                v
            })
            .collect();
        let doc = serde_json::json!({
            "name": script.name,
            "origin": script.origin,
            "description": description,
            "arguments": arguments,
        });
        out(&format!("{doc}\n"));
        return code::OK;
    }
    let mut text = format!(
        "{}: {description}\n\nUsage: opsh {} [key=value]… [--dry-run] [--yes] [--json]\n",
        script.name, script.name
    );
    if declared.is_empty() {
        text.push_str("\nArguments: none declared\n");
    } else {
        text.push_str("\nArguments:\n");
        for d in declared {
            text.push_str(&format!("  {}\n", d.help_line(settings)));
        }
    }
    out(&text);
    code::OK
}

/// `opsh migrate`: the changes made (with --dry-run: the plan, each change with its reason and
/// SQL) as text for a person, or the result map as one JSON document.
pub fn migrated(outcome: Outcome, json: bool) -> u8 {
    let value = match outcome {
        Outcome::Value(value) if !json && value.is_map() => value,
        other => return self::outcome(other, json),
    };
    let map = value.cast::<rhai::Map>();
    let items = |key: &str| -> Vec<rhai::Dynamic> {
        map.get(key)
            .and_then(|v| v.clone().try_cast::<rhai::Array>())
            .unwrap_or_default()
    };
    let changes = |key: &str, with_sql: bool| -> Vec<String> {
        items(key)
            .into_iter()
            .filter_map(|c| c.try_cast::<rhai::Map>())
            .map(|c| {
                let field = |k: &str| c.get(k).map(|v| v.to_string()).unwrap_or_default();
                let mut text = format!(
                    "  {} {}: {}\n",
                    field("kind"),
                    field("name"),
                    field("reason")
                );
                let statements = c
                    .get("statements")
                    .and_then(|v| v.clone().try_cast::<rhai::Array>())
                    .unwrap_or_default();
                for sql in statements.iter().filter(|_| with_sql) {
                    for line in sql.to_string().lines() {
                        text.push_str(&format!("      {line}\n"));
                    }
                }
                text
            })
            .collect()
    };
    let plural = |n: usize| if n == 1 { "change" } else { "changes" };
    // The plan shows each change's SQL; what was made, only what and why (-v logs each step).
    let (pending, applied) = (changes("pending", true), changes("applied", false));
    let mut text = if !pending.is_empty() {
        format!(
            "{} {} to make (--dry-run: nothing changed):\n{}",
            pending.len(),
            plural(pending.len()),
            pending.concat()
        )
    } else if !applied.is_empty() {
        format!(
            "Made {} {}:\n{}",
            applied.len(),
            plural(applied.len()),
            applied.concat()
        )
    } else {
        "Nothing to change: the schema has what opsh needs.\n".to_string()
    };
    for warning in items("warnings") {
        text.push_str(&format!("warning: {warning}\n"));
    }
    out(&text);
    code::OK
}

/// `opsh audit`: the recent destructive actions, newest first.
pub fn audit(listing: &crate::ops::audit::Listing, json: bool) -> u8 {
    if let Some(warning) = &listing.warning {
        tracing::warn!("{warning}");
    }
    if json {
        out(&format!(
            "{}\n",
            serde_json::to_string(listing).unwrap_or_default()
        ));
        return code::OK;
    }
    if listing.records.is_empty() {
        out("No destructive action recorded.\n");
        return code::OK;
    }
    let mut text = String::new();
    for l in &listing.records {
        let r = &l.record;
        let at = r.at.get(..19).unwrap_or(&r.at).replace('T', " ");
        let what = r.procedure.as_deref().unwrap_or("-");
        let target = r
            .target
            .as_deref()
            .map(|t| format!(" [{t}]"))
            .unwrap_or_default();
        let mut marks = Vec::new();
        if r.dry_run {
            marks.push("dry run");
        }
        if l.pending {
            marks.push("pending: kept in the local file");
        }
        let marks = if marks.is_empty() {
            String::new()
        } else {
            format!(" ({})", marks.join(", "))
        };
        text.push_str(&format!(
            "{at}Z  {}@{}{target}  {what}  {}: {} -> {}{marks}\n",
            r.os_user, r.host, r.op, r.summary, r.outcome
        ));
    }
    out(&text);
    code::OK
}
