//! The by-id comparison: the rows' point keys read by COPY into an external sort ([`Spill`]),
//! numbers and UUIDs apart as Qdrant orders them, merged against the scroll's points as they
//! arrive; only the differences are kept.

use futures_util::FutureExt;

use super::copy::{copy_column, unescape};
use super::pairs::{Pair, by_id_select};
use super::report::{Lists, PairResult, compared};
use super::spill::{Record, Sorted, Spill};
use crate::ops::Target;
use crate::ops::error::{ErrorKind, OpError};
use crate::ops::qdrant::{self as qd, PointKey};

/// Point keys on their way to being sorted, numbers and UUIDs apart: Qdrant orders every
/// number before every UUID, so the numbers read back first and then the UUIDs are in its order,
/// and each sorts as a plain integer (half the bytes of the enum, and no tag to compare).
#[derive(Default)]
struct KeySpill {
    nums: Spill<u64>,
    uuids: Spill<u128>,
}

impl KeySpill {
    #[cfg(test)]
    fn with_run(run: usize) -> KeySpill {
        KeySpill {
            nums: Spill::with_run(run),
            uuids: Spill::with_run(run),
        }
    }

    fn push(&mut self, key: PointKey) -> std::io::Result<()> {
        match key {
            PointKey::Num(n) => self.nums.push(n),
            PointKey::Uuid(u) => self.uuids.push(u),
        }
    }

    /// The numbers in order, then the UUIDs in order.
    fn into_sorted(self) -> std::io::Result<(Sorted<u64>, Sorted<u128>)> {
        Ok((self.nums.into_sorted()?, self.uuids.into_sorted()?))
    }
}

fn spill_err(e: std::io::Error) -> OpError {
    OpError::new(
        ErrorKind::Failed,
        None,
        format!(
            "cannot spill ids to a temp file in {}: {e} (set TMPDIR to a writable directory with room)",
            std::env::temp_dir().display()
        ),
    )
}

/// The rows of a by-id pair as the COPY task leaves them.
#[derive(Default)]
struct Rows {
    keys: KeySpill,
    invalid: Vec<String>,
    count: u64,
    spilled: Option<std::io::Error>,
    /// The keys in order, once [`Rows::sort`] ran.
    sorted: Option<std::io::Result<(Sorted<u64>, Sorted<u128>)>>,
}

impl Rows {
    /// Sorts the keys; run at the end of the COPY task, beside the scroll rather than in its way.
    fn sort(mut self) -> Rows {
        let keys = std::mem::take(&mut self.keys);
        self.sorted = Some(match self.spilled.take() {
            Some(e) => Err(e),
            None => keys.into_sorted(),
        });
        self
    }
}

/// A by-id comparison in progress: the rows' keys, sorted, walked along with the points as the
/// scroll hands them over in Qdrant's id order, numbers and UUIDs each in a walk of their own
/// (every number comes before every UUID on both sides). Only the differences are kept.
#[derive(Default)]
struct Merging {
    walks: Option<(Walk<u64>, Walk<u128>)>,
    last: Option<PointKey>,
    error: Option<OpError>,
}

impl Merging {
    /// Takes the rows once their task ended, then catches up with the points read meanwhile.
    fn start(&mut self, done: Result<Rows, OpError>, early: KeySpill) -> Option<Rows> {
        let mut rows = match done {
            Ok(rows) => rows,
            Err(e) => {
                self.error = Some(e);
                return None;
            }
        };
        let walks = rows
            .sorted
            .take()
            .unwrap_or_else(|| Err(std::io::Error::other("the rows were not sorted")))
            .and_then(|(nums, uuids)| Ok((Walk::new(nums)?, Walk::new(uuids)?)));
        match walks {
            Ok(walks) => self.walks = Some(walks),
            Err(e) => {
                self.error = Some(spill_err(e));
                return None;
            }
        }
        let replayed = early.into_sorted().and_then(|(mut nums, mut uuids)| {
            while let Some(n) = nums.next_record()? {
                self.point(PointKey::Num(n));
            }
            while let Some(u) = uuids.next_record()? {
                self.point(PointKey::Uuid(u));
            }
            Ok(())
        });
        if let Err(e) = replayed {
            self.error.get_or_insert(spill_err(e));
        }
        Some(rows)
    }

    fn point(&mut self, k: PointKey) {
        if self.error.is_some() {
            return;
        }
        if let Some(last) = self.last
            && k <= last
        {
            // Qdrant scrolls in id order, each id once; a merge cannot trust anything else.
            self.error = Some(OpError::new(
                ErrorKind::Failed,
                None,
                format!("the scroll returned point {k} after {last}, out of Qdrant's id order"),
            ));
            return;
        }
        self.last = Some(k);
        let Some((nums, uuids)) = self.walks.as_mut() else {
            return;
        };
        let walked = match k {
            PointKey::Num(n) => nums.point(n),
            PointKey::Uuid(u) => uuids.point(u),
        };
        if let Err(e) = walked {
            self.error = Some(spill_err(e));
        }
    }

    /// (matched, missing, orphans), each list in Qdrant's order; the rows after the last point
    /// are missing too.
    fn finish(self) -> Result<(u64, Vec<PointKey>, Vec<PointKey>), OpError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let (nums, uuids) = self
            .walks
            .ok_or_else(|| OpError::new(ErrorKind::Failed, None, "the comparison never started"))?;
        let (n, u) = (
            nums.finish().map_err(spill_err)?,
            uuids.finish().map_err(spill_err)?,
        );
        let keys = |nums: Vec<u64>, uuids: Vec<u128>| -> Vec<PointKey> {
            let nums = nums.into_iter().map(PointKey::Num);
            nums.chain(uuids.into_iter().map(PointKey::Uuid)).collect()
        };
        Ok((
            n.matched + u.matched,
            keys(n.missing, u.missing),
            keys(n.orphans, u.orphans),
        ))
    }
}

/// One kind of key merged: the rows in order, the next one not yet passed, the differences.
struct Walk<T> {
    rows: Sorted<T>,
    row: Option<T>,
    matched: u64,
    missing: Vec<T>,
    orphans: Vec<T>,
}

impl<T: Record + Copy> Walk<T> {
    fn new(mut rows: Sorted<T>) -> std::io::Result<Walk<T>> {
        let row = rows.next_record()?;
        Ok(Walk {
            rows,
            row,
            matched: 0,
            missing: Vec::new(),
            orphans: Vec::new(),
        })
    }

    /// The next point, in order: the rows before it are missing, a row equal to it matches,
    /// and with none it is an orphan.
    fn point(&mut self, k: T) -> std::io::Result<()> {
        while let Some(row) = self.row {
            if row > k {
                break;
            }
            self.row = self.rows.next_record()?;
            if row == k {
                self.matched += 1;
                return Ok(());
            }
            self.missing.push(row);
        }
        self.orphans.push(k);
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<Walk<T>> {
        while let Some(row) = self.row {
            self.missing.push(row);
            self.row = self.rows.next_record()?;
        }
        Ok(self)
    }
}

/// A by-id pair: the rows read on a task of their own into a spill, sorted as Qdrant orders
/// ids, while the scroll's points are merged against them as they come.
pub(super) async fn compare_by_id(
    target: &Target,
    pair: &Pair,
    page: u32,
) -> Result<(PairResult, Lists), OpError> {
    let select = by_id_select(pair);
    let each_row = |rows: &mut Rows, line: &[u8]| {
        rows.count += 1;
        // A backslash is COPY's escape, and no id form has one: such a line is read unescaped.
        let key = PointKey::parse_bytes(line).or_else(|| {
            line.contains(&b'\\')
                .then(|| PointKey::parse(&unescape(line)))?
        });
        match key {
            Some(k) => {
                if let Err(e) = rows.keys.push(k) {
                    rows.spilled = Some(e);
                }
            }
            None if line == b"\\N" => rows.invalid.push("NULL".into()),
            None => rows.invalid.push(unescape(line)),
        }
    };
    let mut rows_task = copy_column(target, &select, Rows::default(), each_row, Rows::sort).await?;
    let pg_backend = target.pg_backend().clone();
    let joined = move |r: Result<Result<Rows, OpError>, tokio::task::JoinError>| {
        r.unwrap_or_else(|e| Err(OpError::new(ErrorKind::Failed, Some(&pg_backend), e)))
    };
    // Points are merged against the sorted rows as they arrive; the ones that come before the
    // rows are ready wait in a spill (in order, so it is read back without a merge).
    let mut merging = Merging::default();
    let mut early = KeySpill::default();
    let mut rows: Option<Rows> = None;
    let mut point_count = 0u64;
    qd::scroll_ids(target, &pair.collection, page, |page| {
        if rows.is_none()
            && merging.error.is_none()
            && let Some(done) = (&mut rows_task.0).now_or_never()
        {
            rows = merging.start(joined(done), std::mem::take(&mut early));
        }
        point_count += page.len() as u64;
        for k in page {
            if rows.is_some() {
                merging.point(k);
            } else if let Err(e) = early.push(k) {
                merging.error.get_or_insert(spill_err(e));
            }
        }
    })
    .await?;
    if rows.is_none() && merging.error.is_none() {
        let done = (&mut rows_task.0).await;
        rows = merging.start(joined(done), early);
    }
    let (matched, missing, orphans) = merging.finish()?;
    let Rows {
        mut invalid,
        count: row_count,
        ..
    } = rows.expect("the rows were read");
    let missing: Vec<String> = missing.iter().map(ToString::to_string).collect();
    invalid.sort();
    Ok(compared(
        pair,
        row_count,
        point_count,
        matched,
        Lists {
            missing,
            orphans,
            invalid,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nums(v: &[u64]) -> Vec<PointKey> {
        v.iter().map(|&n| PointKey::Num(n)).collect()
    }

    #[test]
    fn merging_matches_points_read_before_and_after_the_rows_are_ready() {
        let mut rows = Rows {
            keys: KeySpill::with_run(2),
            ..Rows::default()
        };
        for k in nums(&[9, 1, 4, 4, 7, 12]) {
            rows.keys.push(k).unwrap();
        }
        let mut early = KeySpill::with_run(2);
        for k in nums(&[0, 1, 3]) {
            early.push(k).unwrap();
        }
        let mut m = Merging::default();
        assert!(m.start(Ok(rows.sort()), early).is_some());
        for k in nums(&[4, 8, 9]) {
            m.point(k);
        }
        let (matched, missing, orphans) = m.finish().unwrap();
        assert_eq!(matched, 3, "1, 4 (a repeated row counts once) and 9");
        assert_eq!(missing, nums(&[7, 12]));
        assert_eq!(orphans, nums(&[0, 3, 8]));
    }

    #[test]
    fn a_point_out_of_qdrants_order_fails_the_comparison() {
        let mut m = Merging::default();
        m.start(Ok(Rows::default().sort()), KeySpill::default());
        for k in nums(&[5, 6, 2]) {
            m.point(k);
        }
        let err = m.finish().unwrap_err().to_string();
        assert!(err.contains("point 2 after 6"), "{err}");
    }

    #[test]
    fn spilled_point_keys_come_back_in_qdrant_order() {
        // Numbers before UUIDs, each ascending, across several runs and with repeats.
        let mut keys: Vec<PointKey> = (0..5000u64)
            .map(|i| {
                let v = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                if i % 3 == 0 {
                    PointKey::Num(v % 1000)
                } else {
                    PointKey::Uuid(u128::from(v) << 64 | u128::from(i % 97))
                }
            })
            .collect();
        keys.push(PointKey::Num(u64::MAX));
        keys.push(PointKey::Uuid(0));
        let mut spill = KeySpill::with_run(64);
        for k in &keys {
            spill.push(*k).unwrap();
        }
        let (nums, uuids) = spill.into_sorted().unwrap();
        let nums = nums.map(|n| PointKey::Num(n.unwrap()));
        let back: Vec<PointKey> = nums
            .chain(uuids.map(|u| PointKey::Uuid(u.unwrap())))
            .collect();
        keys.sort();
        keys.dedup();
        assert_eq!(back, keys);
        assert!(
            matches!(back.iter().position(|k| matches!(k, PointKey::Uuid(_))), Some(i) if back[i - 1] == PointKey::Num(u64::MAX))
        );
    }
}
