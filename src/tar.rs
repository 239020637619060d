//! A streaming reader for a tar archive that holds one regular file, as the Docker Engine's
//! `GET /containers/{id}/archive` sends a single file (Go's archive/tar: ustar headers, PAX
//! extended headers when a value does not fit, GNU long names): the file's bytes come out as
//! the archive's chunks arrive, never the whole file in memory.
//!
//! Feed it chunk by chunk with [`TarOne::next`]; each call returns the next run of the file's
//! bytes (or None once the chunk is used up), and [`TarOne::finish`] says whether the archive
//! was whole.

const BLOCK: usize = 512;
/// PAX headers are small (a few records); a larger one is not what the engine sends.
const PAX_LIMIT: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub size: u64,
    /// Modification time, Unix seconds.
    pub mtime: i64,
}

#[derive(Debug)]
enum State {
    /// Collecting a 512-byte header.
    Header,
    /// A PAX extended header's records (they apply to the next entry).
    Pax { left: u64, pad: u64 },
    /// Data of an entry that is not the file (a global header, a GNU long name).
    Skip { left: u64 },
    /// The file's data.
    Data { left: u64, pad: u64 },
    /// The end-of-archive marker was read; anything after it is ignored.
    End,
}

#[derive(Debug)]
pub struct TarOne {
    state: State,
    header: Vec<u8>,
    pax: Vec<u8>,
    pax_size: Option<u64>,
    pax_mtime: Option<i64>,
    entry: Option<Entry>,
}

impl Default for TarOne {
    fn default() -> Self {
        TarOne::new()
    }
}

impl TarOne {
    pub fn new() -> TarOne {
        TarOne {
            state: State::Header,
            header: Vec::with_capacity(BLOCK),
            pax: Vec::new(),
            pax_size: None,
            pax_mtime: None,
            entry: None,
        }
    }

    /// Consumes the start of `input`; returns the file's bytes found there, if any. Call again
    /// while `input` is not empty.
    pub fn next<'a>(&mut self, input: &mut &'a [u8]) -> Result<Option<&'a [u8]>, String> {
        loop {
            if input.is_empty() {
                return Ok(None);
            }
            match &mut self.state {
                State::End => {
                    *input = &[];
                    return Ok(None);
                }
                State::Header => {
                    let take = (BLOCK - self.header.len()).min(input.len());
                    self.header.extend_from_slice(&input[..take]);
                    *input = &input[take..];
                    if self.header.len() == BLOCK {
                        let header = std::mem::take(&mut self.header);
                        self.header_done(&header)?;
                    }
                }
                State::Pax { left, pad } => {
                    let take = (*left).min(input.len() as u64) as usize;
                    self.pax.extend_from_slice(&input[..take]);
                    *input = &input[take..];
                    *left -= take as u64;
                    if *left == 0 {
                        let pad = *pad;
                        self.read_pax()?;
                        self.state = State::Skip { left: pad };
                    }
                }
                State::Skip { left } => {
                    let take = (*left).min(input.len() as u64) as usize;
                    *input = &input[take..];
                    *left -= take as u64;
                    if *left == 0 {
                        self.state = State::Header;
                    }
                }
                State::Data { left, pad } => {
                    if *left == 0 {
                        self.state = State::Skip { left: *pad };
                        continue;
                    }
                    let take = (*left).min(input.len() as u64) as usize;
                    let data = &input[..take];
                    *input = &input[take..];
                    *left -= take as u64;
                    return Ok(Some(data));
                }
            }
        }
    }

    fn header_done(&mut self, h: &[u8]) -> Result<(), String> {
        if h.iter().all(|&b| b == 0) {
            self.state = State::End;
            return Ok(());
        }
        let stored = octal(&h[148..156]).ok_or("a tar header's checksum field is not a number")?;
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(b)
                }
            })
            .sum();
        if stored != sum {
            return Err("a tar header's checksum does not match (not a tar archive?)".into());
        }
        let size = number(&h[124..136]).ok_or("a tar header's size is not a number")?;
        let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        match h[156] {
            b'x' => {
                if size > PAX_LIMIT {
                    return Err(format!("a PAX header of {size} bytes"));
                }
                self.pax.clear();
                self.state = if size == 0 {
                    State::Skip { left: pad }
                } else {
                    State::Pax { left: size, pad }
                };
            }
            // A global PAX header, a GNU long name or link name: nothing opsh needs.
            b'g' | b'L' | b'K' => self.state = State::Skip { left: size + pad },
            b'0' | 0 | b'7' => {
                if self.entry.is_some() {
                    return Err("the archive holds more than one file".into());
                }
                let size = self.pax_size.take().unwrap_or(size);
                let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
                let mtime = match self.pax_mtime.take() {
                    Some(t) => t,
                    None => number(&h[136..148]).map(|t| t as i64).unwrap_or(0),
                };
                self.entry = Some(Entry { size, mtime });
                self.state = State::Data { left: size, pad };
            }
            b'5' => return Err("it is a directory, not a file".into()),
            b'2' => return Err("it is a symbolic link, not a file".into()),
            b'1' => return Err("it is a hard link, not a file".into()),
            other => {
                return Err(format!(
                    "an archive entry of type `{}` where a file was expected",
                    other as char
                ));
            }
        }
        Ok(())
    }

    /// PAX records: `<len> <key>=<value>\n`; size and mtime apply to the next entry.
    fn read_pax(&mut self) -> Result<(), String> {
        let mut rest = &self.pax[..];
        while !rest.is_empty() {
            let space = rest
                .iter()
                .position(|&b| b == b' ')
                .ok_or("a PAX record without a length")?;
            let len: usize = std::str::from_utf8(&rest[..space])
                .ok()
                .and_then(|s| s.parse().ok())
                .filter(|&n| n > space && n <= rest.len())
                .ok_or("a PAX record with a bad length")?;
            let record = &rest[space + 1..len];
            let record = record.strip_suffix(b"\n").unwrap_or(record);
            if let Some(eq) = record.iter().position(|&b| b == b'=') {
                let value = String::from_utf8_lossy(&record[eq + 1..]);
                match &record[..eq] {
                    b"size" => {
                        self.pax_size =
                            Some(value.parse().map_err(|_| "a PAX size is not a number")?)
                    }
                    b"mtime" => {
                        let secs = value.split('.').next().unwrap_or("");
                        self.pax_mtime = secs.parse().ok();
                    }
                    _ => {}
                }
            }
            rest = &rest[len..];
        }
        Ok(())
    }

    /// The file's size and time once the archive has ended whole; an error when it was cut
    /// short or held no file.
    pub fn finish(&self) -> Result<Entry, String> {
        match (&self.state, self.entry) {
            (State::Data { left, .. }, Some(e)) if *left > 0 => Err(format!(
                "the archive ended {left} bytes before the end of its {}-byte file",
                e.size
            )),
            (State::Header, _) if !self.header.is_empty() => {
                Err("the archive ended inside a header".into())
            }
            (State::Pax { .. }, _) => Err("the archive ended inside a PAX header".into()),
            (_, Some(e)) => Ok(e),
            (_, None) => Err("the archive holds no file".into()),
        }
    }
}

/// An octal field (NUL- or space-terminated, maybe padded with either).
fn octal(field: &[u8]) -> Option<u64> {
    let text: String = field
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as char)
        .collect();
    let text = text.trim();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// A numeric field: octal, or GNU base-256 (high bit of the first byte set) for large values.
fn number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut n: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            n = n.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        Some(n)
    } else {
        octal(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, size: u64, kind: u8, mtime: u64) -> Vec<u8> {
        let mut h = vec![0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(b"0000644\0");
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[136..148].copy_from_slice(format!("{mtime:011o}\0").as_bytes());
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }

    fn padded(data: &[u8]) -> Vec<u8> {
        let mut v = data.to_vec();
        v.resize(data.len().div_ceil(BLOCK) * BLOCK, 0);
        v
    }

    fn archive(parts: &[Vec<u8>]) -> Vec<u8> {
        let mut out: Vec<u8> = parts.concat();
        out.extend_from_slice(&[0u8; 2 * BLOCK]);
        out
    }

    /// Feeds the archive in chunks of `step` bytes and collects the file.
    fn read(bytes: &[u8], step: usize) -> Result<(Vec<u8>, Entry), String> {
        let mut tar = TarOne::new();
        let mut out = Vec::new();
        for chunk in bytes.chunks(step) {
            let mut input = chunk;
            while !input.is_empty() {
                if let Some(data) = tar.next(&mut input)? {
                    out.extend_from_slice(data);
                }
            }
        }
        Ok((out, tar.finish()?))
    }

    #[test]
    fn one_file_comes_out_whole_whatever_the_chunks() {
        let data: Vec<u8> = (0..1300u32).map(|i| (i * 7 % 251) as u8).collect();
        let bytes = archive(&[header("dump.rdb", 1300, b'0', 1_700_000_000), padded(&data)]);
        for step in [1, 7, 511, 512, 513, 4096, bytes.len()] {
            let (out, entry) = read(&bytes, step).unwrap();
            assert_eq!(out, data, "step {step}");
            assert_eq!(
                entry,
                Entry {
                    size: 1300,
                    mtime: 1_700_000_000
                }
            );
        }
    }

    #[test]
    fn pax_size_and_mtime_apply_to_the_file() {
        let records = "22 mtime=1700000123.5\n13 size=1000\n";
        let data = vec![b'r'; 1000];
        let bytes = archive(&[
            header("PaxHeaders/dump.rdb", records.len() as u64, b'x', 0),
            padded(records.as_bytes()),
            header("dump.rdb", 0, b'0', 5),
            padded(&data),
        ]);
        let (out, entry) = read(&bytes, 100).unwrap();
        assert_eq!(out, data);
        assert_eq!(
            entry,
            Entry {
                size: 1000,
                mtime: 1_700_000_123
            }
        );
    }

    #[test]
    fn a_cut_archive_a_directory_and_garbage_are_errors() {
        let data = vec![1u8; 2000];
        let bytes = archive(&[header("dump.rdb", 2000, b'0', 0), padded(&data)]);
        let cut = &bytes[..BLOCK + 1000];
        assert_eq!(
            read(cut, 64).unwrap_err(),
            "the archive ended 1000 bytes before the end of its 2000-byte file"
        );
        let dir = archive(&[header("data/", 0, b'5', 0)]);
        assert_eq!(
            read(&dir, 512).unwrap_err(),
            "it is a directory, not a file"
        );
        let garbage = vec![b'x'; 1024];
        assert!(read(&garbage, 512).unwrap_err().contains("checksum"));
        let two = archive(&[
            header("a", 1, b'0', 0),
            padded(b"a"),
            header("b", 1, b'0', 0),
            padded(b"b"),
        ]);
        assert_eq!(
            read(&two, 512).unwrap_err(),
            "the archive holds more than one file"
        );
        assert_eq!(
            read(&[0u8; 1024], 512).unwrap_err(),
            "the archive holds no file"
        );
    }

    #[test]
    fn base256_sizes_are_read() {
        let mut field = [0u8; 12];
        field[0] = 0x80;
        field[4..].copy_from_slice(&(10u64 << 30).to_be_bytes());
        assert_eq!(number(&field), Some(10u64 << 30));
    }
}
