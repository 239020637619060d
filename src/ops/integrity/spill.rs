//! An external sort for the integrity check: records pushed in any order come back sorted and
//! deduplicated while at most one run of them is held in memory. Each full run is sorted and
//! appended to an unnamed temp file (gone when dropped, also on a crash); reading back merges
//! the runs with a small buffer each. So comparing N rows with N points costs a run or two of
//! memory whatever N is, plus the differences the caller keeps, and the records' bytes (16 per
//! UUID) of temp file in TMPDIR once N passes one run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// Records held in memory before a run is sorted and written out: 16 MB of UUIDs, so the
/// comparison of a million ids never touches the disk, and beyond that memory stays flat.
pub const RUN: usize = 1 << 20;

/// Bytes read ahead from each run while merging, and written at a time.
const READ_AHEAD: usize = 64 * 1024;

/// A value the spill can write to a run and read back.
pub trait Record: Ord + Clone {
    fn encode(&self, out: &mut Vec<u8>);
    /// The record at the front of `buf` and its length, or None when `buf` holds no whole one.
    fn decode(buf: &[u8]) -> Option<(Self, usize)>;
}

/// Integers, big-endian: fixed width, and the bytes compare as the numbers do.
macro_rules! integer_record {
    ($($t:ty),*) => {$(
        impl Record for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }

            fn decode(buf: &[u8]) -> Option<(Self, usize)> {
                let bytes = buf.first_chunk()?;
                Some((<$t>::from_be_bytes(*bytes), std::mem::size_of::<$t>()))
            }
        }
    )*};
}
integer_record!(u64, u128);

pub struct Spill<R> {
    run: Vec<R>,
    cap: usize,
    file: Option<File>,
    /// Byte ranges of the runs written so far.
    runs: Vec<(u64, u64)>,
    written: u64,
    scratch: Vec<u8>,
    /// The last record pushed, while every push so far came in order (a Qdrant scroll does):
    /// such a spill is read back as it was written, without a merge.
    in_order: Option<Option<R>>,
    /// Why a run could not be written: every later push fails at once with it, instead of
    /// sorting the same full run again on each.
    broken: Option<(io::ErrorKind, String)>,
    /// Where the temp file goes: TMPDIR, read when the spill is made.
    dir: std::path::PathBuf,
}

impl<R: Record> Spill<R> {
    pub fn new() -> Self {
        Spill::with_run(RUN)
    }

    pub fn with_run(cap: usize) -> Self {
        Spill {
            run: Vec::new(),
            cap: cap.max(1),
            file: None,
            runs: Vec::new(),
            written: 0,
            scratch: Vec::new(),
            in_order: Some(None),
            broken: None,
            dir: std::env::temp_dir(),
        }
    }

    pub fn push(&mut self, record: R) -> io::Result<()> {
        if let Some((kind, why)) = &self.broken {
            return Err(io::Error::new(*kind, why.clone()));
        }
        if let Some(last) = &mut self.in_order {
            if last.as_ref().is_some_and(|l| *l > record) {
                self.in_order = None;
            } else {
                *last = Some(record.clone());
            }
        }
        self.run.push(record);
        if self.run.len() >= self.cap
            && let Err(e) = self.write_run()
        {
            self.run = Vec::new();
            self.broken = Some((e.kind(), e.to_string()));
            return Err(e);
        }
        Ok(())
    }

    fn write_run(&mut self) -> io::Result<()> {
        sort_dedup(&mut self.run);
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(tempfile::tempfile_in(&self.dir)?),
        };
        // Written a block at a time: a whole run encoded at once would double its memory.
        let start = self.written;
        self.scratch.clear();
        for r in self.run.drain(..) {
            r.encode(&mut self.scratch);
            if self.scratch.len() >= READ_AHEAD {
                file.write_all(&self.scratch)?;
                self.written += self.scratch.len() as u64;
                self.scratch.clear();
            }
        }
        file.write_all(&self.scratch)?;
        self.written += self.scratch.len() as u64;
        self.runs.push((start, self.written));
        Ok(())
    }

    /// Every record pushed, in order, each once.
    pub fn into_sorted(mut self) -> io::Result<Sorted<R>> {
        if let Some((kind, why)) = self.broken.take() {
            return Err(io::Error::new(kind, why));
        }
        if self.runs.is_empty() {
            sort_dedup(&mut self.run);
            return Ok(Sorted {
                source: Source::Memory(self.run.into_iter()),
                last: None,
            });
        }
        if !self.run.is_empty() {
            self.write_run()?;
        }
        let file = Arc::new(self.file.take().expect("a run was written"));
        if self.in_order.is_some() || self.runs.len() == 1 {
            // The runs follow each other in order: one reader over all of them.
            return Ok(Sorted {
                source: Source::One(RunReader::new(file, 0, self.written)),
                last: None,
            });
        }
        let mut readers: Vec<RunReader> = self
            .runs
            .iter()
            .map(|&(start, end)| RunReader::new(file.clone(), start, end))
            .collect();
        let mut heads = BinaryHeap::with_capacity(readers.len());
        for (i, r) in readers.iter_mut().enumerate() {
            if let Some(rec) = r.next::<R>()? {
                heads.push(Reverse((rec, i)));
            }
        }
        Ok(Sorted {
            source: Source::Runs { readers, heads },
            last: None,
        })
    }
}

impl<R: Record> Default for Spill<R> {
    fn default() -> Self {
        Spill::new()
    }
}

fn sort_dedup<R: Ord>(run: &mut Vec<R>) {
    if !run.is_sorted() {
        run.sort_unstable();
    }
    run.dedup();
}

/// One run of the temp file, read ahead in blocks.
struct RunReader {
    file: Arc<File>,
    next_offset: u64,
    end: u64,
    buf: Vec<u8>,
    at: usize,
}

impl RunReader {
    fn new(file: Arc<File>, start: u64, end: u64) -> Self {
        RunReader {
            file,
            next_offset: start,
            end,
            buf: Vec::new(),
            at: 0,
        }
    }

    fn next<R: Record>(&mut self) -> io::Result<Option<R>> {
        loop {
            if let Some((rec, len)) = R::decode(&self.buf[self.at..]) {
                self.at += len;
                return Ok(Some(rec));
            }
            if self.next_offset >= self.end {
                if self.at < self.buf.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a spill run ends inside a record",
                    ));
                }
                return Ok(None);
            }
            self.buf.drain(..self.at);
            self.at = 0;
            let want = READ_AHEAD.min((self.end - self.next_offset) as usize);
            let have = self.buf.len();
            self.buf.resize(have + want, 0);
            self.file
                .read_exact_at(&mut self.buf[have..], self.next_offset)?;
            self.next_offset += want as u64;
        }
    }
}

enum Source<R> {
    Memory(std::vec::IntoIter<R>),
    One(RunReader),
    Runs {
        readers: Vec<RunReader>,
        heads: BinaryHeap<Reverse<(R, usize)>>,
    },
}

/// The records of a spill in order, without repeats.
pub struct Sorted<R> {
    source: Source<R>,
    last: Option<R>,
}

impl<R: Record> Sorted<R> {
    fn next_any(&mut self) -> io::Result<Option<R>> {
        match &mut self.source {
            Source::Memory(it) => Ok(it.next()),
            Source::One(reader) => reader.next::<R>(),
            Source::Runs { readers, heads } => {
                let Some(Reverse((rec, i))) = heads.pop() else {
                    return Ok(None);
                };
                if let Some(next) = readers[i].next::<R>()? {
                    heads.push(Reverse((next, i)));
                }
                Ok(Some(rec))
            }
        }
    }
}

impl<R: Record> Sorted<R> {
    /// The next record, or None after the last.
    pub fn next_record(&mut self) -> io::Result<Option<R>> {
        loop {
            let Some(rec) = self.next_any()? else {
                return Ok(None);
            };
            // Runs are deduplicated each; a value in two runs comes out once.
            if self.last.as_ref() != Some(&rec) {
                self.last = Some(rec.clone());
                return Ok(Some(rec));
            }
        }
    }
}

impl<R: Record> Iterator for Sorted<R> {
    type Item = io::Result<R>;

    fn next(&mut self) -> Option<io::Result<R>> {
        self.next_record().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
    struct N(u32);

    impl Record for N {
        fn encode(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.0.to_be_bytes());
        }
        fn decode(buf: &[u8]) -> Option<(Self, usize)> {
            let b: [u8; 4] = buf.get(..4)?.try_into().ok()?;
            Some((N(u32::from_be_bytes(b)), 4))
        }
    }

    fn sorted(values: &[u32], run: usize) -> Vec<u32> {
        let mut s = Spill::with_run(run);
        for &v in values {
            s.push(N(v)).unwrap();
        }
        s.into_sorted().unwrap().map(|r| r.unwrap().0).collect()
    }

    #[test]
    fn many_runs_merge_sorted_and_once() {
        // A pseudo-random sequence with repeats inside and across runs.
        let values: Vec<u32> = (0..50_000u32)
            .map(|i| i.wrapping_mul(2_654_435_761) % 20_011)
            .collect();
        let mut want = values.clone();
        want.sort_unstable();
        want.dedup();
        assert_eq!(sorted(&values, 1000), want);
        assert_eq!(sorted(&values, 7), want);
        assert_eq!(sorted(&values, 1_000_000), want, "one run, in memory");
    }

    #[test]
    fn records_pushed_in_order_are_read_back_without_a_merge() {
        let values: Vec<u32> = (0..10_000).map(|i| i / 3).collect();
        let mut spill = Spill::with_run(100);
        for &v in &values {
            spill.push(N(v)).unwrap();
        }
        assert!(spill.in_order.is_some());
        let back: Vec<u32> = spill.into_sorted().unwrap().map(|r| r.unwrap().0).collect();
        assert_eq!(back, (0..3334).collect::<Vec<_>>());
    }

    #[test]
    fn a_run_that_cannot_be_written_fails_every_later_push_at_once() {
        let mut spill = Spill::with_run(4);
        spill.dir = "/nonexistent/opsh-spill-test".into();
        let results: Vec<bool> = (0..10_000u32).map(|v| spill.push(N(v)).is_ok()).collect();
        assert_eq!(
            results.iter().filter(|ok| **ok).count(),
            3,
            "the pushes before the first run"
        );
        assert!(
            spill.run.is_empty(),
            "the failed run is dropped, not sorted again"
        );
        assert!(spill.into_sorted().is_err());
    }

    #[test]
    fn empty_and_single() {
        assert!(sorted(&[], 4).is_empty());
        assert_eq!(sorted(&[5, 5, 5, 5, 5], 2), vec![5]);
    }
}
