//! The README's table of bundled procedures (`opsh scripts --markdown`, written in by
//! tools/readme-api and checked by tests/api.rs), made from the documents `opsh scripts --json`
//! prints, so the two cannot disagree.

use serde_json::Value;

use crate::error::code;

/// The table: each bundled procedure, what it does, its arguments with their defaults (a
/// setting's built-in default and the setting's name, so the table does not depend on the
/// machine that made it), and whether it changes data.
pub fn markdown(docs: &[Value]) -> String {
    let mut out = String::from(
        "| procedure | what it does | arguments (default) | changes data |\n|---|---|---|---|\n",
    );
    for doc in docs.iter().filter(|d| d["origin"] == "bundled") {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let arguments: Vec<String> = doc["arguments"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|a| {
                let default = match a["default"].as_str() {
                    None => String::new(),
                    Some(d) => match d.strip_prefix("setting ") {
                        Some(key) => {
                            let key = key.trim();
                            let value = crate::config::key::built_in_default(key).unwrap_or("");
                            format!(" = {} (setting `{key}`)", shown(value))
                        }
                        None => format!(" = {}", shown(d.trim_matches('"'))),
                    },
                };
                format!("`{}`{default}", text(&a["name"]))
            })
            .collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            text(&doc["name"]),
            cell(&text(&doc["description"])),
            cell(&arguments.join(", ")),
            if doc["changes_data"] == true {
                "yes"
            } else {
                "no"
            },
        ));
    }
    out
}

/// A default as the table shows it: in backticks, `""` for empty.
fn shown(value: &str) -> String {
    if value.is_empty() {
        "`\"\"`".into()
    } else {
        format!("`{value}`")
    }
}

/// Text in a table cell: a `|` would end the cell.
fn cell(text: &str) -> String {
    text.trim().replace('|', "\\|")
}

pub fn print(docs: &[Value]) -> u8 {
    super::out(&markdown(docs));
    code::OK
}
