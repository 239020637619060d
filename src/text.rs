//! Text from outside (script files, configuration files, arguments, the environment) is
//! UTF-8; bad bytes are an error that says where they are, never a panic.

use std::ffi::OsStr;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Decodes a file's bytes as UTF-8, skipping a leading byte-order mark (editors on Windows
/// write one). The error names the line and column of the first bad byte.
pub fn decode(mut bytes: Vec<u8>) -> Result<String, String> {
    if bytes.starts_with(BOM) {
        bytes.drain(..BOM.len());
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let before = &bytes[..valid];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        // The column counts characters, as editors do; everything before `valid` is UTF-8.
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        format!(
            "not UTF-8 text: byte 0x{:02X} at line {line}, column {column}",
            bytes[valid]
        )
    })
}

/// An argument or environment value as UTF-8, or an error naming what it is.
pub fn os_str<'a>(value: &'a OsStr, what: &str) -> Result<&'a str, String> {
    value
        .to_str()
        .ok_or_else(|| format!("{what} is not valid UTF-8: {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_utf8_skips_a_bom_and_locates_bad_bytes() {
        assert_eq!(
            decode(b"\xEF\xBB\xBFlet x = 1;".to_vec()).unwrap(),
            "let x = 1;"
        );
        assert_eq!(decode("é\n".as_bytes().to_vec()).unwrap(), "é\n");
        assert_eq!(
            decode(b"// ok\nlet \xC3\xA9 = \xFF;\n".to_vec()).unwrap_err(),
            "not UTF-8 text: byte 0xFF at line 2, column 9"
        );
    }
}

/// An array or a map as words in a sentence: `a, b, c`, `key: value, key: value`, maps in a
/// list separated by `; `, nothing as "none". Scripts' `${list}` in a report line, `print` and
/// `to_string` read this, not Rhai's `["a", "b"]`.
pub fn listed(value: &rhai::Dynamic) -> String {
    if let Some(array) = value.read_lock::<rhai::Array>() {
        if array.is_empty() {
            return "none".into();
        }
        let separator = if array.iter().any(|v| v.is_map()) {
            "; "
        } else {
            ", "
        };
        return array.iter().map(item).collect::<Vec<_>>().join(separator);
    }
    if let Some(map) = value.read_lock::<rhai::Map>() {
        if map.is_empty() {
            return "none".into();
        }
        return map
            .iter()
            .map(|(k, v)| format!("{k}: {}", item(v)))
            .collect::<Vec<_>>()
            .join(", ");
    }
    value.to_string()
}

fn item(v: &rhai::Dynamic) -> String {
    if v.is_array() {
        // A list inside a list keeps its bounds, or the two would read as one.
        format!("({})", listed(v))
    } else if v.is_map() {
        listed(v)
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod listed_tests {
    use super::listed;
    use rhai::Dynamic;

    fn value(json: &str) -> Dynamic {
        serde_json::from_str::<Dynamic>(json).unwrap()
    }

    #[test]
    fn lists_and_maps_read_as_words() {
        assert_eq!(
            listed(&value(r#"["channels", "content"]"#)),
            "channels, content"
        );
        assert_eq!(listed(&value("[]")), "none");
        assert_eq!(
            listed(&value(r#"{"pending": 3, "failed": 1}"#)),
            "failed: 1, pending: 3"
        );
        assert_eq!(listed(&value(r#"[{"id": 1}, {"id": 2}]"#)), "id: 1; id: 2");
        assert_eq!(listed(&value("[1, [2, 3]]")), "1, (2, 3)");
    }
}
