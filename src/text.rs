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
