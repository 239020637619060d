//! A point id as Qdrant identifies it: a u64, or a UUID read from any text `Uuid::parse_str`
//! accepts (hyphenated in any case, 32-hex such as an MD5 digest, braced, urn), always shown
//! hyphenated lowercase. It sits with the client because both the client's id-only scroll and
//! the domains read ids this way.

use qdrant_client::qdrant::{PointId, point_id::PointIdOptions};

/// A point id as Qdrant orders and compares them: every number before every UUID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PointKey {
    Num(u64),
    Uuid(u128),
}

impl PointKey {
    /// Reads a chunk id as Qdrant would: decimal digits that fit a u64 are a number, anything
    /// `Uuid::parse_str` accepts is that UUID, anything else is None (Qdrant refuses it).
    pub fn parse(text: &str) -> Option<PointKey> {
        PointKey::parse_bytes(text.as_bytes())
    }

    /// [`PointKey::parse`] of raw bytes (a COPY line, a gRPC string), with no UTF-8 check
    /// first: every form read directly is ASCII, and the rest go through one.
    pub fn parse_bytes(text: &[u8]) -> Option<PointKey> {
        // Digits that fit a u64 are a number; 32 digits too many for one are a UUID's simple
        // form (an MD5 hex digest can be all decimal digits), which falls through below.
        if !text.is_empty() && text.iter().all(u8::is_ascii_digit) {
            let n = text.iter().try_fold(0u64, |n, &d| {
                n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            });
            if let Some(n) = n {
                return Some(PointKey::Num(n));
            }
        }
        parse_uuid(text).map(PointKey::Uuid)
    }

    /// The text of a UUID point id (never a number, even when it is all digits).
    pub fn uuid(text: &[u8]) -> Option<PointKey> {
        parse_uuid(text).map(PointKey::Uuid)
    }

    pub fn from_grpc(id: &PointId) -> Option<PointKey> {
        match id.point_id_options.as_ref()? {
            PointIdOptions::Num(n) => Some(PointKey::Num(*n)),
            PointIdOptions::Uuid(text) => PointKey::uuid(text.as_bytes()),
        }
    }

    pub fn to_grpc(self) -> PointId {
        let options = match self {
            PointKey::Num(n) => PointIdOptions::Num(n),
            PointKey::Uuid(u) => PointIdOptions::Uuid(uuid::Uuid::from_u128(u).to_string()),
        };
        PointId {
            point_id_options: Some(options),
        }
    }
}

/// A UUID as `Uuid::parse_str` reads it. The two forms nearly every id has — hyphenated (as
/// Qdrant answers) and 32 hex digits (an MD5 digest) — are decoded here directly, since the
/// integrity check reads millions of them; the rest go to the uuid crate.
fn parse_uuid(text: &[u8]) -> Option<u128> {
    let groups = match text.len() {
        32 => [
            hex8(text, [0, 4])?,
            hex8(text, [8, 12])?,
            hex8(text, [16, 20])?,
            hex8(text, [24, 28])?,
        ],
        // The hyphenated form's groups of four are joined into eights.
        36 if text[8] == b'-' && text[13] == b'-' && text[18] == b'-' && text[23] == b'-' => [
            hex8(text, [0, 4])?,
            hex8(text, [9, 14])?,
            hex8(text, [19, 24])?,
            hex8(text, [28, 32])?,
        ],
        _ => {
            let text = std::str::from_utf8(text).ok()?;
            return uuid::Uuid::parse_str(text).ok().map(|u| u.as_u128());
        }
    };
    Some(groups.iter().fold(0u128, |v, &g| v << 32 | u128::from(g)))
}

/// Eight ASCII hex digits (either case), four at each of `at`, as a number; all eight at once
/// in a u64: each byte is checked to be a digit or a letter a–f with the byte-wise range test
/// of "Bit Twiddling Hacks" (hasbetween), then turned into its nibble and the nibbles packed.
#[inline(always)]
fn hex8(text: &[u8], at: [usize; 2]) -> Option<u32> {
    let a: &[u8; 4] = text.get(at[0]..)?.first_chunk()?;
    let b: &[u8; 4] = text.get(at[1]..)?.first_chunk()?;
    let chunk = [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]];
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;
    // The high bit of each byte set where lo < byte < hi; bytes must be below 0x80.
    let between =
        |x: u64, lo: u64, hi: u64| (ONES * (127 + hi) - x) & !x & (x + ONES * (127 - lo)) & HIGH;
    let x = u64::from_be_bytes(chunk);
    if x & HIGH != 0 {
        return None;
    }
    let digit = between(x, b'0' as u64 - 1, b'9' as u64 + 1);
    let letter = between(x | (ONES * 0x20), b'a' as u64 - 1, b'f' as u64 + 1);
    if digit | letter != HIGH {
        return None;
    }
    // '0'–'9' end in their value, 'a'–'f' and 'A'–'F' in 1–6: nine more.
    let nibbles = (x & (ONES * 0x0F)) + (letter >> 7) * 9;
    let pairs = (nibbles | nibbles >> 4) & 0x00FF_00FF_00FF_00FF;
    let quads = (pairs | pairs >> 8) & 0x0000_FFFF_0000_FFFF;
    Some((quads | quads >> 16) as u32)
}

impl std::fmt::Display for PointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PointKey::Num(n) => write!(f, "{n}"),
            PointKey::Uuid(u) => write!(f, "{}", uuid::Uuid::from_u128(*u)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PointKey;

    #[test]
    fn ids_are_read_as_qdrant_reads_them() {
        let h = PointKey::parse("4a7d1ed4-1447-4e40-33ac-29ccb8653d9b").unwrap();
        for form in [
            "4a7d1ed414474e4033ac29ccb8653d9b",
            "4A7D1ED4-1447-4E40-33AC-29CCB8653D9B",
            "{4a7d1ed4-1447-4e40-33ac-29ccb8653d9b}",
            "urn:uuid:4a7d1ed4-1447-4e40-33ac-29ccb8653d9b",
        ] {
            assert_eq!(PointKey::parse(form), Some(h), "{form}");
        }
        assert_eq!(PointKey::parse("42"), Some(PointKey::Num(42)));
        // An MD5 digest that happens to be all decimal digits is a UUID, not a number.
        assert_eq!(
            PointKey::parse("12345678901234567890123456789012"),
            Some(PointKey::Uuid(0x12345678901234567890123456789012))
        );
        for bad in [
            "",
            "-1",
            "4a7d1ed4",
            "chunk-1",
            "18446744073709551616",
            " 42",
        ] {
            assert_eq!(PointKey::parse(bad), None, "{bad}");
        }
        assert!(PointKey::Num(u64::MAX) < PointKey::Uuid(0));
    }

    #[test]
    fn the_fast_uuid_path_reads_exactly_what_the_uuid_crate_reads() {
        // Both directly decoded forms, in both cases, with every byte value at every position
        // (hex digits and their neighbours, a moved hyphen, braces, bytes that are not UTF-8).
        let base = "4a7d1ed4-1447-4e40-33ac-29ccb8653d9b";
        let simple: String = base.chars().filter(|&c| c != '-').collect();
        let mut texts: Vec<Vec<u8>> = Vec::new();
        for text in [
            base.to_string(),
            simple.clone(),
            base.to_uppercase(),
            simple.to_uppercase(),
        ] {
            texts.push(text.clone().into_bytes());
            for i in 0..text.len() {
                for b in 0..=255u8 {
                    let mut t = text.clone().into_bytes();
                    t[i] = b;
                    texts.push(t);
                }
            }
        }
        texts.push(format!("{}é", &base[..34]).into_bytes());
        texts.push(b"00000000-0000-0000-0000-000000000000".to_vec());
        texts.push(b"ffffffffffffffffFFFFFFFFFFFFFFFF".to_vec());
        for t in &texts {
            let crate_reads = std::str::from_utf8(t)
                .ok()
                .and_then(|t| uuid::Uuid::parse_str(t).ok())
                .map(|u| u.as_u128());
            assert_eq!(
                super::parse_uuid(t),
                crate_reads,
                "{:?}",
                String::from_utf8_lossy(t)
            );
        }
        assert_eq!(
            super::parse_uuid(&texts[0]),
            Some(0x4a7d1ed414474e4033ac29ccb8653d9b)
        );
    }
}
