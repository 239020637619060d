//! Rows for a person: a table whose columns come in the order the function or query gave them
//! (crate::columns), each as wide as it needs while the table fits the terminal, long cells cut
//! with … rather than wrapped; or psql's expanded form, one record per block. Timestamps are
//! shown as local time "2026-12-02 03:53:02" (UTC on request), `*_seconds` fields as "3h 5m".

use comfy_table::{ContentArrangement, Table, presets};
use rhai::{Dynamic, Map};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// How rows are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Layout {
    /// The terminal's width: columns are fitted to it; None: no limit (piped output).
    pub width: Option<u16>,
    /// Timestamps in UTC instead of local time.
    pub utc: bool,
    /// One record per block (psql's `\x`).
    pub expanded: bool,
}

/// The columns to show: the attached order first (those present), then any other key in key
/// order; without an order, `id` and `name` first as they identify the row.
pub fn columns(rows: &[Map], order: Option<&[String]>) -> Vec<String> {
    let present = |c: &str| rows.iter().any(|r| r.contains_key(c));
    let mut columns: Vec<String> = match order {
        Some(order) => order.iter().filter(|c| present(c)).cloned().collect(),
        None => ["id", "name"]
            .into_iter()
            .filter(|c| present(c))
            .map(String::from)
            .collect(),
    };
    for row in rows {
        for key in row.keys() {
            if !columns.iter().any(|c| c == key.as_str()) {
                columns.push(key.to_string());
            }
        }
    }
    columns
}

/// Rows as a table with `(N rows)` below, or as expanded records.
pub fn rows(rows: &[Map], order: Option<&[String]>, layout: Layout) -> String {
    let columns = columns(rows, order);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| {
                    row.get(c.as_str())
                        .map_or_else(String::new, |v| cell(c, v, layout.utc))
                })
                .collect()
        })
        .collect();
    if layout.expanded {
        return expanded(&columns, &cells, layout.width);
    }
    let data: Vec<usize> = (0..columns.len())
        .map(|i| cells.iter().map(|r| r[i].width()).max().unwrap_or(0))
        .collect();
    let header: Vec<usize> = columns.iter().map(|c| c.width()).collect();
    let widths = match layout.width {
        // Borders and padding: "│ " before each column, " " after, "│" at the end.
        Some(w) => fit(
            &header,
            &data,
            usize::from(w).saturating_sub(3 * columns.len() + 1),
        ),
        None => header.iter().zip(&data).map(|(h, d)| *h.max(d)).collect(),
    };
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(columns.iter().zip(&widths).map(|(c, w)| cut(c, *w)));
    for row in &cells {
        t.add_row(row.iter().zip(&widths).map(|(c, w)| cut(c, *w)));
    }
    let n = rows.len();
    format!("{t}\n({n} row{})", if n == 1 { "" } else { "s" })
}

/// Expanded records: `-[ RECORD n ]` and `key | value` lines, as psql's `\x`.
fn expanded(columns: &[String], cells: &[Vec<String>], width: Option<u16>) -> String {
    let key_width = columns.iter().map(|c| c.width()).max().unwrap_or(0);
    let value_width = cells.iter().flatten().map(|c| c.width()).max().unwrap_or(0);
    let mut rule = key_width + 3 + value_width;
    if let Some(w) = width {
        rule = rule.min(usize::from(w));
    }
    let mut out = Vec::new();
    for (n, row) in cells.iter().enumerate() {
        let title = format!("-[ RECORD {} ]", n + 1);
        let dashes = rule.saturating_sub(title.width()).max(1);
        out.push(format!("{title}{}", "-".repeat(dashes)));
        for (c, value) in columns.iter().zip(row) {
            let pad = key_width - c.width();
            out.push(
                format!("{c}{} | {value}", " ".repeat(pad))
                    .trim_end()
                    .to_string(),
            );
        }
    }
    out.join("\n")
}

/// A map as `key  value` lines, keys aligned, in the attached order if any.
pub fn record(map: &Map, order: Option<&[String]>, utc: bool) -> String {
    if map.is_empty() {
        return "#{}".into();
    }
    let keys = columns(std::slice::from_ref(map), order);
    let width = keys.iter().map(|k| k.width()).max().unwrap_or(0);
    keys.iter()
        .filter_map(|k| map.get(k.as_str()).map(|v| (k, v)))
        .map(|(k, v)| {
            let pad = width - k.width();
            format!("{k}{}  {}", " ".repeat(pad), cell(k, v, utc))
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Widths that fit `available`: every column as wide as its header and content if all fit.
/// Else headers wider than their column's content are cut first (to 6), then columns of up to
/// 20 characters (ids, states, timestamps) stay whole while the wider ones can keep 8 each,
/// and the wide ones share the rest: the narrower of them keep theirs, the widest are cut to
/// an equal share (none below 8 or its content), the way a person would squeeze a table.
pub fn fit(header: &[usize], data: &[usize], available: usize) -> Vec<usize> {
    let natural: Vec<usize> = header.iter().zip(data).map(|(h, d)| *h.max(d)).collect();
    if natural.iter().sum::<usize>() <= available {
        return natural;
    }
    let reduced: Vec<usize> = header
        .iter()
        .zip(data)
        .map(|(h, d)| *d.max(&(*h).min(6)))
        .collect();
    if let Some(slack) = available.checked_sub(reduced.iter().sum()) {
        // The room left goes back to the cut headers, the least cut first.
        let mut widths = reduced.clone();
        let mut order: Vec<usize> = (0..natural.len()).collect();
        order.sort_by_key(|&i| natural[i] - reduced[i]);
        let mut slack = slack;
        for i in order {
            let give = (natural[i] - reduced[i]).min(slack);
            widths[i] += give;
            slack -= give;
        }
        return widths;
    }
    const COMPACT: usize = 20;
    let natural = reduced;
    let compact: usize = natural.iter().filter(|w| **w <= COMPACT).sum();
    let wide: Vec<usize> = (0..natural.len())
        .filter(|&i| natural[i] > COMPACT)
        .collect();
    let mut widths = natural.clone();
    if !wide.is_empty() && compact + 8 * wide.len() <= available {
        share(&mut widths, &wide, available - compact);
    } else {
        let all: Vec<usize> = (0..natural.len()).collect();
        share(&mut widths, &all, available);
    }
    widths
}

/// Water-filling: the columns `among` share `available`, narrow ones keeping their width.
fn share(widths: &mut [usize], among: &[usize], available: usize) {
    let natural = widths.to_vec();
    let mut order = among.to_vec();
    order.sort_by_key(|&i| natural[i]);
    let mut remaining = available;
    for (k, &i) in order.iter().enumerate() {
        let left = order.len() - k;
        let fair = remaining / left;
        if natural[i] <= fair {
            remaining -= natural[i];
            continue;
        }
        // This column and every wider one get the fair share, the first few one more.
        let extra = remaining % left;
        for (j, &wide) in order[k..].iter().enumerate() {
            let share = fair + usize::from(j < extra);
            widths[wide] = share.max(natural[wide].min(8));
        }
        break;
    }
}

/// Text cut to `width` columns, with … as its last one when cut.
pub fn cut(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for ch in text.chars() {
        let w = ch.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        used += w;
        out.push(ch);
    }
    if width > 0 {
        out.push('…');
    }
    out
}

/// One value as one line of a table: timestamps in local time (or UTC), `*_seconds` numbers
/// as an age, strings as they are (line breaks as spaces), () empty, maps and arrays compact.
pub fn cell(key: &str, v: &Dynamic, utc: bool) -> String {
    if v.is_unit() {
        return String::new();
    }
    if let Some(seconds) = seconds(key, v) {
        return age(seconds);
    }
    let text = if v.is_string() {
        let s = v.to_string();
        timestamp(&s, utc).unwrap_or(s)
    } else if v.is_map() || v.is_array() {
        serde_json::to_string(v).unwrap_or_else(|_| v.to_string())
    } else {
        v.to_string()
    };
    if text.contains(['\n', '\r', '\t']) {
        text.replace("\r\n", " ").replace(['\n', '\r', '\t'], " ")
    } else {
        text
    }
}

fn seconds(key: &str, v: &Dynamic) -> Option<f64> {
    if !(key.ends_with("_seconds") || key == "seconds") {
        return None;
    }
    v.as_float()
        .ok()
        .or_else(|| v.as_int().ok().map(|i| i as f64))
}

/// An RFC 3339 timestamp as "2026-12-02 03:53:02" in local time (or UTC); one without a time
/// zone as it is, without its `T` and fraction.
pub fn timestamp(text: &str, utc: bool) -> Option<String> {
    // Cheap test first: most strings are not timestamps.
    let bytes = text.as_bytes();
    if bytes.len() < 19 || bytes[4] != b'-' || bytes[10] != b'T' {
        return None;
    }
    let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) else {
        // A timestamp without time zone (the deployment's columns) is shown as it is.
        let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
        return Some(naive.format("%Y-%m-%d %H:%M:%S").to_string());
    };
    Some(if utc {
        at.with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    } else {
        at.with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    })
}

/// An age as a person says it: "42s", "5m 3s", "3h 5m", "2d 4h".
pub fn age(seconds: f64) -> String {
    if !seconds.is_finite() {
        return seconds.to_string();
    }
    let sign = if seconds < 0.0 { "-" } else { "" };
    let s = seconds.abs().round() as u64;
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let text = match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m {sec}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    };
    format!("{sign}{text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps(json: &str) -> Vec<Map> {
        serde_json::from_str::<Dynamic>(json)
            .unwrap()
            .into_array()
            .unwrap()
            .into_iter()
            .map(|row| row.cast::<Map>())
            .collect()
    }

    #[test]
    fn columns_follow_the_given_order_then_the_rest() {
        let rows = maps(r#"[{"a": 1, "id": 2, "z": 3, "extra": 4}]"#);
        let order = ["z".to_string(), "id".to_string(), "a".to_string()];
        assert_eq!(columns(&rows, Some(&order)), ["z", "id", "a", "extra"]);
        assert_eq!(columns(&rows, None), ["id", "a", "extra", "z"]);
    }

    #[test]
    fn narrow_columns_keep_their_width_and_wide_ones_share_the_rest() {
        let fit = |natural: &[usize], available| fit(&vec![1; natural.len()], natural, available);
        assert_eq!(fit(&[2, 10, 40], 100), [2, 10, 40]);
        assert_eq!(fit(&[2, 10, 40, 40], 50), [2, 10, 19, 19]);
        assert_eq!(fit(&[2, 10, 25, 40], 50), [2, 10, 19, 19]);
        // Timestamps stay whole while the wide columns can keep 8 each.
        assert_eq!(fit(&[2, 19, 19, 40], 50), [2, 19, 19, 10]);
        // None below 8 (or its content) even when that overflows.
        assert_eq!(fit(&[5, 30, 30], 10), [5, 8, 8]);
    }

    #[test]
    fn headers_wider_than_their_content_give_way_first() {
        // content_id (empty), status, created_at: the empty column's header is cut, not data.
        assert_eq!(fit(&[10, 6, 10], &[0, 10, 19], 37), [8, 10, 19]);
        assert_eq!(fit(&[10, 6, 10], &[0, 10, 19], 35), [6, 10, 19]);
    }

    #[test]
    fn long_cells_are_cut_with_an_ellipsis() {
        assert_eq!(cut("processing", 10), "processing");
        assert_eq!(cut("processing", 6), "proce…");
        assert_eq!(cut("한국어텍스트", 5), "한국…");
    }

    #[test]
    fn timestamps_and_ages_read_as_a_person_writes_them() {
        assert_eq!(
            timestamp("2026-12-02T03:53:02.123456Z", true).as_deref(),
            Some("2026-12-02 03:53:02")
        );
        assert_eq!(
            timestamp("2026-12-02T03:53:02+09:00", true).as_deref(),
            Some("2026-12-01 18:53:02")
        );
        assert_eq!(
            timestamp("2026-12-02T03:53:02.5", false).as_deref(),
            Some("2026-12-02 03:53:02")
        );
        assert_eq!(timestamp("processing", true), None);
        assert_eq!(age(42.4), "42s");
        assert_eq!(age(303.0), "5m 3s");
        assert_eq!(age(11_100.0), "3h 5m");
        assert_eq!(age(187_200.0), "2d 4h");
        assert_eq!(
            cell("age_seconds", &Dynamic::from(11_100.0_f64), true),
            "3h 5m"
        );
        assert_eq!(cell("count", &Dynamic::from(11_100_i64), true), "11100");
    }

    #[test]
    fn a_wide_table_fits_the_terminal_by_cutting_its_widest_cells() {
        let rows = maps(
            r#"[{"id": 1, "status": "processing", "error_message": "a very long message that goes on and on and on", "created_at": "2026-12-02T03:53:02Z"}]"#,
        );
        let order = ["id", "status", "error_message", "created_at"].map(String::from);
        let layout = Layout {
            width: Some(60),
            utc: true,
            expanded: false,
        };
        assert_eq!(
            self::rows(&rows, Some(&order), layout),
            "┌────┬────────────┬──────────────────┬─────────────────────┐\n\
             │ id ┆ status     ┆ error_message    ┆ created_at          │\n\
             ╞════╪════════════╪══════════════════╪═════════════════════╡\n\
             │ 1  ┆ processing ┆ a very long mes… ┆ 2026-12-02 03:53:02 │\n\
             └────┴────────────┴──────────────────┴─────────────────────┘\n\
             (1 row)"
        );
    }

    #[test]
    fn expanded_shows_one_record_per_block() {
        let rows = maps(r#"[{"id": 1, "status": "failed"}, {"id": 2, "status": "pending"}]"#);
        let layout = Layout {
            width: None,
            utc: true,
            expanded: true,
        };
        assert_eq!(
            self::rows(&rows, None, layout),
            "-[ RECORD 1 ]---\nid     | 1\nstatus | failed\n-[ RECORD 2 ]---\nid     | 2\nstatus | pending"
        );
    }
}
