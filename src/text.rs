//! Text in and out. In: text from outside (script files, configuration files, arguments, the
//! environment) is UTF-8; bad bytes are an error that says where they are, never a panic. Out:
//! the words of report lines, written once for every op and script (the globals `plural`,
//! `fmt_size` and `fmt_duration` expose them): a count with its noun in the right number
//! ([`count`]), a size in B/KiB/MiB ([`size`]), a duration in words ([`duration`]).

use std::ffi::OsStr;
use std::time::Duration;

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

/// The regular English plural of a noun phrase's last word: "job" → "jobs", "entry" →
/// "entries", "process" → "processes". Irregular ones are given to [`count`] whole.
pub fn plural_of(singular: &str) -> String {
    let lower = singular.to_ascii_lowercase();
    let consonant_y = lower.ends_with('y')
        && !matches!(
            lower.chars().rev().nth(1),
            Some('a' | 'e' | 'i' | 'o' | 'u') | None
        );
    if consonant_y {
        format!("{}ies", &singular[..singular.len() - 1])
    } else if ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|e| lower.ends_with(e))
    {
        format!("{singular}es")
    } else {
        format!("{singular}s")
    }
}

/// A count and its noun in the right number: "1 job", "0 jobs", "2 content items";
/// `plural` for what the regular rule gets wrong or for a verb that agrees ("job was" /
/// "jobs were").
pub fn count(n: i64, singular: &str, plural: Option<&str>) -> String {
    if n == 1 || n == -1 {
        format!("{n} {singular}")
    } else {
        match plural {
            Some(p) => format!("{n} {p}"),
            None => format!("{n} {}", plural_of(singular)),
        }
    }
}

/// A size in bytes as people read it: "512 B", "880.1 KiB", "1.5 MiB", "2.0 GiB" (powers of
/// 1024, one decimal).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    // 1023.96 KiB would print as "1024.0 KiB": one unit up instead.
    if (value * 10.0).round() >= 10240.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A duration in words, for thresholds and measured times alike: "1 day", "1 hour 30
/// minutes", "10 minutes", "1.2 seconds", "850 ms". Below a minute the tenths of a second
/// that were measured are kept; from a minute on, whole seconds. Days are the largest unit (no
/// months). It reads back with the duration parser ("1 hour 30 minutes" is 5400 seconds).
pub fn duration(d: Duration) -> String {
    if d.is_zero() {
        return "0 seconds".into();
    }
    if d < Duration::from_secs(1) {
        let ms = d.as_millis();
        return if ms == 0 {
            "less than 1 ms".into()
        } else {
            format!("{ms} ms")
        };
    }
    if d < Duration::from_secs(60) {
        let tenths = (d.as_secs_f64() * 10.0).round() as i64;
        return if tenths % 10 == 0 {
            count(tenths / 10, "second", None)
        } else {
            format!("{}.{} seconds", tenths / 10, tenths % 10)
        };
    }
    let secs = d.as_secs();
    let parts = [
        (secs / 86_400, "day"),
        (secs % 86_400 / 3600, "hour"),
        (secs % 3600 / 60, "minute"),
        (secs % 60, "second"),
    ];
    parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| count(*n as i64, unit, None))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_agree_with_their_nouns() {
        assert_eq!(count(1, "content item", None), "1 content item");
        assert_eq!(count(0, "content item", None), "0 content items");
        assert_eq!(count(3, "entry", None), "3 entries");
        assert_eq!(count(2, "day", None), "2 days");
        assert_eq!(count(2, "process", None), "2 processes");
        assert_eq!(count(2, "match", None), "2 matches");
        assert_eq!(count(1, "job was", Some("jobs were")), "1 job was");
        assert_eq!(count(5, "job was", Some("jobs were")), "5 jobs were");
    }

    #[test]
    fn sizes_in_binary_units() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1024), "1.0 KiB");
        assert_eq!(size(901_248), "880.1 KiB");
        assert_eq!(size(1_572_864), "1.5 MiB");
        assert_eq!(size(1_048_575), "1.0 MiB");
        assert_eq!(size(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn durations_in_words_that_parse_back() {
        let d = |s: f64| duration(Duration::from_secs_f64(s));
        assert_eq!(d(0.0), "0 seconds");
        assert_eq!(d(0.0004), "less than 1 ms");
        assert_eq!(d(0.85), "850 ms");
        assert_eq!(d(1.0), "1 second");
        assert_eq!(d(1.24), "1.2 seconds");
        assert_eq!(d(45.0), "45 seconds");
        assert_eq!(d(600.0), "10 minutes");
        assert_eq!(d(3600.0), "1 hour");
        assert_eq!(d(5400.0), "1 hour 30 minutes");
        assert_eq!(d(86_400.0), "1 day");
        assert_eq!(d(90_061.0), "1 day 1 hour 1 minute 1 second");
        assert_eq!(d(40.0 * 86_400.0), "40 days");
        for secs in [1, 45, 600, 5400, 90_061] {
            let text = duration(Duration::from_secs(secs));
            assert_eq!(crate::duration::parse(&text), Ok(Duration::from_secs(secs)));
        }
    }

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
