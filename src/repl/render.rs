//! How the REPL shows a result: an array of maps as a table fitted to the terminal, a map as
//! aligned keys and values, a report as the CLI renders it, JSON on request; a result longer
//! than the screen goes through the pager, as psql does.

use std::io::{IsTerminal, Write};
use std::process::{Command, Stdio};

use rhai::{Dynamic, Map};

use crate::output::table::{self, Layout};
use crate::report::Report;

/// How results are shown; `:json` and `:pager` change it.
#[derive(Debug, Clone, Copy)]
pub struct Display {
    pub json: bool,
    pub pager: bool,
    /// Stdout is a terminal: tables fit its width, the pager may be used.
    pub terminal: bool,
    /// ANSI colours (a terminal, NO_COLOR unset).
    pub colour: bool,
    /// One record per block (psql's expanded mode); `:x` toggles it.
    pub expanded: bool,
    /// Timestamps in UTC instead of local time (output.timezone).
    pub utc: bool,
}

impl Display {
    pub fn new(json: bool) -> Display {
        let terminal = std::io::stdout().is_terminal();
        Display {
            json,
            pager: true,
            terminal,
            colour: terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            expanded: false,
            utc: false,
        }
    }

    /// The display the settings ask for: output.records, output.timezone.
    pub fn with_settings(mut self, settings: &crate::config::Settings) -> Display {
        use crate::config::key;
        self.expanded = settings.text(key::OUTPUT_RECORDS) == "expanded";
        self.utc = settings.text(key::OUTPUT_TIMEZONE) == "utc";
        self
    }
}

/// The text of a result (ends with a newline), or None for nothing to show.
pub fn text(value: &Dynamic, display: &Display) -> Option<String> {
    if let Some(report) = value.clone().try_cast::<Report>() {
        if display.json {
            return Some(json(&report.to_json(), display));
        }
        let text = report.to_text(crate::output::marks(display.terminal));
        return Some(if display.colour {
            text
        } else {
            anstream::adapter::strip_str(&text).to_string()
        });
    }
    if value.is_unit() {
        return None;
    }
    if display.json {
        let doc = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        return Some(json(&doc, display));
    }
    let width = display.terminal.then(terminal_width).flatten();
    let order = crate::columns::of(value);
    let mut out = if value.is_string() {
        value.to_string()
    } else if let Some(rows) = maps(value) {
        let layout = Layout {
            width,
            utc: display.utc,
            expanded: display.expanded,
        };
        table::rows(&rows, order.as_deref(), layout)
    } else if let Some(map) = value.read_lock::<Map>() {
        table::record(&map, order.as_deref(), display.utc)
    } else if value.is_array() {
        let compact = table::cell("", value, display.utc);
        if compact.chars().count() <= usize::from(width.unwrap_or(100)) {
            compact
        } else {
            serde_json::to_string_pretty(value).unwrap_or(compact)
        }
    } else {
        value.to_string()
    };
    out.push('\n');
    Some(out)
}

fn json(doc: &serde_json::Value, display: &Display) -> String {
    let text = if display.terminal {
        serde_json::to_string_pretty(doc)
    } else {
        serde_json::to_string(doc)
    };
    text.unwrap_or_else(|_| "null".into()) + "\n"
}

/// The rows of a non-empty array whose items are all maps.
fn maps(value: &Dynamic) -> Option<Vec<Map>> {
    let array = value.read_lock::<rhai::Array>()?;
    if array.is_empty() || !array.iter().all(Dynamic::is_map) {
        return None;
    }
    Some(
        array
            .iter()
            .filter_map(|v| v.read_lock::<Map>().map(|m| m.clone()))
            .collect(),
    )
}

fn terminal_width() -> Option<u16> {
    terminal_size::terminal_size()
        .map(|(w, _)| w.0)
        .filter(|w| *w > 0)
}

fn terminal_height() -> Option<u16> {
    terminal_size::terminal_size()
        .map(|(_, h)| h.0)
        .filter(|h| *h > 0)
}

/// Prints a result; one taller than the screen goes through the pager (stdout a terminal,
/// `:pager on`): $PAGER, else `less -FRX` when installed.
pub fn show(text: &str, display: &Display, bridge: &crate::bridge::Bridge) {
    let text = &crate::redact::text(text);
    if display.pager
        && display.terminal
        && let Some(rows) = terminal_height()
        && text.lines().count() >= usize::from(rows)
        && let Some(pager) = pager_command()
    {
        // The pager owns the terminal: Ctrl-C is its to handle.
        let paged = bridge.foreground(|| page(&pager, text));
        if paged.is_ok() {
            return;
        }
    }
    // A closed stdout is noted there; the REPL's loop ends on it.
    crate::output::out(text);
}

fn pager_command() -> Option<String> {
    if let Some(p) = std::env::var("PAGER").ok().filter(|p| !p.trim().is_empty()) {
        return Some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .any(|d| d.join("less").is_file())
        .then(|| "less -FRX".to_string())
}

fn page(pager: &str, text: &str) -> std::io::Result<()> {
    let mut child = Command::new("sh")
        .args(["-c", pager])
        .stdin(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        // The operator may quit the pager before reading everything: a broken pipe is fine.
        let _ = stdin.write_all(text.as_bytes());
    }
    child.wait()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> Display {
        Display {
            json: false,
            pager: false,
            terminal: false,
            colour: false,
            expanded: false,
            utc: true,
        }
    }

    #[test]
    fn an_array_of_maps_is_a_table() {
        let rows: Dynamic = serde_json::from_str::<Dynamic>(
            r#"[{"id": 1, "status": "pending"}, {"id": 2, "status": "failed", "note": null}]"#,
        )
        .unwrap();
        let text = text(&rows, &plain()).unwrap();
        assert_eq!(
            text,
            "┌────┬─────────┬──────┐\n│ id ┆ status  ┆ note │\n╞════╪═════════╪══════╡\n│ 1  ┆ pending ┆      │\n│ 2  ┆ failed  ┆      │\n└────┴─────────┴──────┘\n(2 rows)\n"
        );
    }

    #[test]
    fn a_map_is_aligned_keys_and_values() {
        let map: Dynamic =
            serde_json::from_str::<Dynamic>(r#"{"a": 1, "long_key": [1, 2], "s": "x"}"#).unwrap();
        assert_eq!(
            text(&map, &plain()).unwrap(),
            "a         1\nlong_key  [1,2]\ns         x\n"
        );
    }

    #[test]
    fn json_on_request() {
        let map: Dynamic = serde_json::from_str::<Dynamic>(r#"{"a": 1}"#).unwrap();
        let display = Display {
            json: true,
            ..plain()
        };
        assert_eq!(text(&map, &display).unwrap(), "{\"a\":1}\n");
        assert_eq!(text(&Dynamic::UNIT, &display), None);
    }
}
