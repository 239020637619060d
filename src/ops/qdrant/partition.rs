//! The partitioned scroll: a collection's id space split into k ranges, scrolled at once and
//! handed on in Qdrant's order.
//!
//! Why: a real Qdrant spends about 2 CPU-seconds of its own per million ids on one scroll, one
//! page after another, so a single stream runs at the speed of one of its cores; k streams use
//! k of them. A scroll may start at any id, present or not: `offset` is a lower bound in
//! Qdrant's order (every number, then every UUID by its 128-bit value), so a range is scrolled
//! from its start until the next page would begin at or past the next range's start, and the
//! ids of its last page from there on are cut off. The ranges follow each other with no gap and
//! no overlap, so no point is lost or read twice, wherever the boundaries fall.
//!
//! Where the boundaries go ([`plan`]) is asked of Qdrant cheaply, a page of one id or of
//! [`SAMPLE`] ids at a time: the first ids of each kind (numbers, UUIDs), and where each kind
//! ends, by a binary search on the highest bit and then on the value. Each kind's span is split
//! evenly (ids spread evenly: random or hashed UUIDs, numbers counted up), and the k ranges are
//! shared between the kinds by their estimated counts. Uneven ids only make some ranges longer.
//!
//! The ranges run at once, each a page ahead ([`run`]). In order ([`Ordered`]), the first
//! range's pages go straight on; a later range's pages wait, in memory up to [`BACKLOG`] ids
//! and in an unnamed temp file beyond, until every range before it has ended, so memory stays
//! flat whatever the collection's size.

use std::fs::File;
use std::future::Future;
use std::io::{BufReader, BufWriter, Read, Seek, Write};

use tokio::sync::mpsc;

use crate::ops::AbortOnDrop;
use crate::ops::clients::qdrant::PointKey;
use crate::ops::error::{ErrorKind, OpError};

/// Ids read from the start of each kind to estimate how densely they lie.
pub const SAMPLE: u32 = 256;

/// Steps of the binary search on the value of each kind's last id, after the one on its
/// highest bit: the span is known to 1/64 of its top power of two.
const REFINE: u32 = 6;

/// Ids of a later range held in memory while it waits; the rest go to a temp file.
pub const BACKLOG: usize = 1 << 16;

/// The two kinds of point id, each an integer domain of its own.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Num,
    Uuid,
}

impl Kind {
    fn key(self, v: u128) -> PointKey {
        match self {
            Kind::Num => PointKey::Num(v as u64),
            Kind::Uuid => PointKey::Uuid(v),
        }
    }

    fn value(self, k: PointKey) -> Option<u128> {
        match (self, k) {
            (Kind::Num, PointKey::Num(n)) => Some(u128::from(n)),
            (Kind::Uuid, PointKey::Uuid(u)) => Some(u),
            _ => None,
        }
    }

    fn bits(self) -> u32 {
        match self {
            Kind::Num => 64,
            Kind::Uuid => 128,
        }
    }
}

/// The ids of one kind: the first, an upper bound on the last, and about how many there are.
#[derive(Debug, Clone, Copy)]
struct Extent {
    first: u128,
    last: u128,
    estimate: f64,
}

/// Where the ids of `kind` lie, or None when the collection has none of them. `probe(from, n)`
/// reads the first `n` ids at or after `from`.
async fn extent<E, Fut>(
    kind: Kind,
    probe: &impl Fn(PointKey, u32) -> Fut,
) -> Result<Option<Extent>, E>
where
    Fut: Future<Output = Result<Vec<PointKey>, E>>,
{
    let sample: Vec<u128> = probe(kind.key(0), SAMPLE)
        .await?
        .into_iter()
        .filter_map(|k| kind.value(k))
        .collect();
    let (Some(&first), Some(&seen)) = (sample.first(), sample.last()) else {
        return Ok(None);
    };
    if sample.len() < SAMPLE as usize {
        // The page ended, or went on to the other kind: these are all of them.
        return Ok(Some(Extent {
            first,
            last: seen,
            estimate: sample.len() as f64,
        }));
    }
    // The first id of this kind at or after `v`, if any.
    let at_or_after = |v: u128| {
        let fut = probe(kind.key(v), 1);
        async move { Ok::<_, E>(fut.await?.into_iter().next().and_then(|k| kind.value(k))) }
    };
    // The highest bit of the last id: none at or past 2^hi, some at or past 2^(lo - 1).
    let (mut lo, mut hi) = (bit_length(seen), kind.bits());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if at_or_after(1u128 << mid).await?.is_some() {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    // Then its value: `present` is an id, and none lies beyond `last`.
    let mut last = if hi >= 128 {
        u128::MAX
    } else {
        (1u128 << hi) - 1
    };
    let mut present = seen.max(if hi == 0 { 0 } else { 1u128 << (hi - 1) });
    for _ in 0..REFINE {
        if present >= last {
            break;
        }
        let mid = present + (last - present) / 2 + 1;
        match at_or_after(mid).await? {
            Some(v) => present = v,
            None => last = mid - 1,
        }
    }
    // As densely as the first SAMPLE ids lie.
    let density = sample.len() as f64 / ((seen - first) as f64 + 1.0);
    Ok(Some(Extent {
        first,
        last,
        estimate: (density * ((last - first) as f64 + 1.0)).max(sample.len() as f64),
    }))
}

fn bit_length(v: u128) -> u32 {
    128 - v.leading_zeros()
}

/// `n` even parts of the extent: the starts of all but the first.
fn split(kind: Kind, e: Extent, n: usize) -> Vec<PointKey> {
    let step = (e.last - e.first) / n.max(1) as u128;
    (1..n)
        .map(|i| kind.key(e.first + step * i as u128))
        .collect()
}

/// Where `k` ranges start, each after the last: the first range starts at the beginning, so
/// only the starts of the others are given (strictly increasing, fewer when the collection
/// is too small to split `k` ways). `probe(from, n)` reads the first `n` ids at or after `from`.
pub async fn plan<E, Fut>(
    k: usize,
    probe: impl Fn(PointKey, u32) -> Fut,
) -> Result<Vec<PointKey>, E>
where
    Fut: Future<Output = Result<Vec<PointKey>, E>>,
{
    if k <= 1 {
        return Ok(Vec::new());
    }
    let (nums, uuids) =
        futures_util::future::try_join(extent(Kind::Num, &probe), extent(Kind::Uuid, &probe))
            .await?;
    let mut starts = match (nums, uuids) {
        (None, None) => Vec::new(),
        (Some(n), None) => split(Kind::Num, n, k),
        (None, Some(u)) => split(Kind::Uuid, u, k),
        (Some(n), Some(u)) => {
            let share = n.estimate / (n.estimate + u.estimate);
            let for_nums = ((k as f64 * share).round() as usize).clamp(1, k - 1);
            let mut starts = split(Kind::Num, n, for_nums);
            // Every UUID comes after every number: the UUIDs' ranges start at the least one.
            starts.push(PointKey::Uuid(0));
            starts.extend(split(Kind::Uuid, u, k - for_nums));
            starts
        }
    };
    starts.dedup();
    Ok(starts)
}

/// A page's item, by its point id (None: no readable id; Qdrant always sends one).
pub trait Keyed {
    fn point_key(&self) -> Option<PointKey>;
}

impl Keyed for PointKey {
    fn point_key(&self) -> Option<PointKey> {
        Some(*self)
    }
}

impl Keyed for qdrant_client::qdrant::RetrievedPoint {
    fn point_key(&self) -> Option<PointKey> {
        self.id.as_ref().and_then(PointKey::from_grpc)
    }
}

/// What one page read brings: the items and where the next page starts (None after the
/// last; Some(None): an offset that cannot be read).
pub type Page<T> = (Vec<T>, Option<Option<PointKey>>);

/// Where the pages of the ranges go.
pub trait Sink<T> {
    fn page(&mut self, range: usize, page: Vec<T>) -> Result<(), OpError>;
    fn done(&mut self, range: usize) -> Result<(), OpError>;
}

/// Pages handed on as they come, each range's in its order.
pub struct AsTheyCome<F>(pub F);

impl<T, F: FnMut(Vec<T>)> Sink<T> for AsTheyCome<F> {
    fn page(&mut self, _: usize, page: Vec<T>) -> Result<(), OpError> {
        (self.0)(page);
        Ok(())
    }

    fn done(&mut self, _: usize) -> Result<(), OpError> {
        Ok(())
    }
}

/// Ids handed on in Qdrant's order: the first range not yet ended goes straight on, the later
/// ones wait in a [`Backlog`] each.
pub struct Ordered<F> {
    each: F,
    head: usize,
    ended: Vec<bool>,
    waiting: Vec<Backlog>,
}

impl<F: FnMut(Vec<PointKey>)> Ordered<F> {
    pub fn new(ranges: usize, each: F) -> Self {
        Ordered {
            each,
            head: 0,
            ended: vec![false; ranges],
            waiting: (0..ranges).map(|_| Backlog::default()).collect(),
        }
    }
}

impl<F: FnMut(Vec<PointKey>)> Sink<PointKey> for Ordered<F> {
    fn page(&mut self, range: usize, page: Vec<PointKey>) -> Result<(), OpError> {
        if range == self.head {
            (self.each)(page);
            Ok(())
        } else {
            self.waiting[range].push(page).map_err(backlog_err)
        }
    }

    fn done(&mut self, range: usize) -> Result<(), OpError> {
        self.ended[range] = true;
        while self.head < self.ended.len() && self.ended[self.head] {
            self.head += 1;
            if let Some(next) = self.waiting.get_mut(self.head) {
                std::mem::take(next)
                    .drain(&mut self.each)
                    .map_err(backlog_err)?;
            }
        }
        Ok(())
    }
}

fn backlog_err(e: std::io::Error) -> OpError {
    OpError::new(
        ErrorKind::Failed,
        None,
        format!(
            "cannot keep scrolled ids in a temp file in {}: {e} (set TMPDIR to a writable directory with room)",
            std::env::temp_dir().display()
        ),
    )
}

/// The ids of a range that waits for the ranges before it: up to [`BACKLOG`] in memory, the
/// rest in an unnamed temp file (gone when dropped), each a tag byte and 8 or 16 bytes.
pub struct Backlog {
    memory: Vec<PointKey>,
    cap: usize,
    file: Option<BufWriter<File>>,
}

impl Default for Backlog {
    fn default() -> Self {
        Backlog::with_cap(BACKLOG)
    }
}

/// Ids handed on at a time when a backlog is read back.
const DRAIN_PAGE: usize = 8192;

impl Backlog {
    pub fn with_cap(cap: usize) -> Self {
        Backlog {
            memory: Vec::new(),
            cap: cap.max(1),
            file: None,
        }
    }

    pub fn push(&mut self, page: Vec<PointKey>) -> std::io::Result<()> {
        if self.memory.is_empty() && self.file.is_none() && page.len() >= self.cap {
            self.memory = page;
        } else {
            self.memory.extend(page);
        }
        if self.memory.len() >= self.cap {
            let file = match &mut self.file {
                Some(f) => f,
                None => self
                    .file
                    .insert(BufWriter::with_capacity(1 << 16, tempfile::tempfile()?)),
            };
            for k in self.memory.drain(..) {
                match k {
                    PointKey::Num(n) => {
                        file.write_all(&[0])?;
                        file.write_all(&n.to_be_bytes())?;
                    }
                    PointKey::Uuid(u) => {
                        file.write_all(&[1])?;
                        file.write_all(&u.to_be_bytes())?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Every id pushed, in the order pushed, handed on a page at a time.
    pub fn drain(self, each: &mut impl FnMut(Vec<PointKey>)) -> std::io::Result<()> {
        if let Some(writer) = self.file {
            let mut file = writer.into_inner().map_err(|e| e.into_error())?;
            file.rewind()?;
            let mut reader = BufReader::with_capacity(1 << 16, file);
            let mut page = Vec::with_capacity(DRAIN_PAGE);
            let mut tag = [0u8; 1];
            loop {
                match reader.read_exact(&mut tag) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e),
                }
                page.push(if tag[0] == 0 {
                    let mut b = [0u8; 8];
                    reader.read_exact(&mut b)?;
                    PointKey::Num(u64::from_be_bytes(b))
                } else {
                    let mut b = [0u8; 16];
                    reader.read_exact(&mut b)?;
                    PointKey::Uuid(u128::from_be_bytes(b))
                });
                if page.len() == DRAIN_PAGE {
                    each(std::mem::replace(&mut page, Vec::with_capacity(DRAIN_PAGE)));
                }
            }
            if !page.is_empty() {
                each(page);
            }
        }
        if !self.memory.is_empty() {
            each(self.memory);
        }
        Ok(())
    }
}

enum Msg<T, E> {
    Page(Vec<T>),
    Done,
    Failed(Failure<E>),
}

/// Why a range's scroll stopped short.
pub enum Failure<E> {
    /// A page read failed.
    Read(E),
    /// Qdrant named a next page by something that is not a point id.
    BadOffset,
    /// A page read's task ended without an answer (it panicked).
    Lost(tokio::task::JoinError),
}

/// Scrolls the ranges that start at `starts` (the first at the beginning; the rest strictly
/// increasing) at once, each a page ahead, handing their pages to `sink`. `fetch(offset)`
/// reads one page from `offset`; `fail` describes why the scroll stopped short.
pub async fn run<T, E, F>(
    starts: &[PointKey],
    fetch: impl Fn(Option<PointKey>) -> F + Clone + Send + Sync + 'static,
    fail: impl Fn(Failure<E>) -> OpError,
    sink: &mut impl Sink<T>,
) -> Result<(), OpError>
where
    T: Keyed + Send + 'static,
    E: Send + 'static,
    F: Future<Output = Result<Page<T>, E>> + Send + 'static,
{
    let ranges = starts.len() + 1;
    let (tx, mut rx) = mpsc::channel::<(usize, Msg<T, E>)>(4 * ranges);
    let mut tasks = Vec::with_capacity(ranges);
    for i in 0..ranges {
        let start = i.checked_sub(1).map(|j| starts[j]);
        let end = starts.get(i).copied();
        let (fetch, tx) = (fetch.clone(), tx.clone());
        tasks.push(AbortOnDrop(tokio::spawn(async move {
            let msg = match scroll_range(start, end, fetch, &tx, i).await {
                Ok(()) => Msg::Done,
                Err(e) => Msg::Failed(e),
            };
            let _ = tx.send((i, msg)).await;
        })));
    }
    drop(tx);
    let mut ended = 0;
    while ended < ranges {
        let Some((i, msg)) = rx.recv().await else {
            // Every range task is gone, one without a word: it panicked.
            let lost = tasks.iter_mut().find(|t| t.0.is_finished());
            let why = match lost {
                Some(t) => (&mut t.0).await.err(),
                None => None,
            };
            return Err(match why {
                Some(e) => fail(Failure::Lost(e)),
                None => OpError::new(ErrorKind::Failed, None, "a scroll range ended early"),
            });
        };
        match msg {
            Msg::Page(page) => sink.page(i, page)?,
            Msg::Done => {
                ended += 1;
                sink.done(i)?;
            }
            Msg::Failed(e) => return Err(fail(e)),
        }
    }
    Ok(())
}

/// One range: pages from `start` until the next would start at or past `end`, the ids of the
/// last page from `end` on cut off.
async fn scroll_range<T, E, F>(
    start: Option<PointKey>,
    end: Option<PointKey>,
    fetch: impl Fn(Option<PointKey>) -> F,
    tx: &mpsc::Sender<(usize, Msg<T, E>)>,
    range: usize,
) -> Result<(), Failure<E>>
where
    T: Keyed + Send + 'static,
    E: Send + 'static,
    F: Future<Output = Result<Page<T>, E>> + Send + 'static,
{
    let past_end = |k: PointKey| end.is_some_and(|e| k >= e);
    let mut next = Some(AbortOnDrop(tokio::spawn(fetch(start))));
    while let Some(mut pending) = next.take() {
        let (mut page, offset) = match (&mut pending.0).await {
            Ok(reply) => reply.map_err(Failure::Read)?,
            Err(e) => return Err(Failure::Lost(e)),
        };
        match offset {
            Some(Some(o)) if !past_end(o) => {
                next = Some(AbortOnDrop(tokio::spawn(fetch(Some(o)))));
            }
            Some(Some(_)) | None => {}
            Some(None) => return Err(Failure::BadOffset),
        }
        if let Some(cut) = page
            .iter()
            .position(|p| p.point_key().is_some_and(past_end))
        {
            page.truncate(cut);
        }
        if !page.is_empty() && tx.send((range, Msg::Page(page))).await.is_err() {
            // The reader is gone: nothing more to do.
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn probe_of(
        ids: &BTreeSet<PointKey>,
    ) -> impl Fn(PointKey, u32) -> std::future::Ready<Result<Vec<PointKey>, ()>> + '_ {
        |from, n| std::future::ready(Ok(ids.range(from..).take(n as usize).copied().collect()))
    }

    fn plan_now(k: usize, ids: &BTreeSet<PointKey>) -> Vec<PointKey> {
        futures_util::FutureExt::now_or_never(plan(k, probe_of(ids)))
            .expect("ready")
            .expect("planned")
    }

    #[test]
    fn an_empty_collection_or_one_range_needs_no_boundary() {
        assert!(plan_now(8, &BTreeSet::new()).is_empty());
        let ids: BTreeSet<_> = (0..10).map(PointKey::Num).collect();
        assert!(plan_now(1, &ids).is_empty());
    }

    #[test]
    fn counted_numbers_split_evenly() {
        let ids: BTreeSet<_> = (0..100_000).map(PointKey::Num).collect();
        let starts = plan_now(4, &ids);
        assert_eq!(starts.len(), 3);
        for (s, want) in starts.iter().zip([25_000u64, 50_000, 75_000]) {
            let PointKey::Num(n) = *s else {
                panic!("{s:?}")
            };
            assert!(n.abs_diff(want) < 2_000, "{starts:?}");
        }
    }

    #[test]
    fn random_uuids_split_by_their_leading_bits() {
        let ids: BTreeSet<_> = (0..20_000u128)
            .map(|i| PointKey::Uuid(i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)))
            .collect();
        let starts = plan_now(4, &ids);
        assert_eq!(starts.len(), 3);
        let mut prev = None;
        for s in &starts {
            let n = ids.range(prev.unwrap_or(PointKey::Num(0))..*s).count();
            assert!((4_000..6_000).contains(&n), "{n} in a range: {starts:?}");
            prev = Some(*s);
        }
    }

    #[test]
    fn numbers_and_uuids_share_the_ranges_by_their_counts() {
        let mut ids: BTreeSet<_> = (0..30_000).map(|i| PointKey::Num(i * 7)).collect();
        ids.extend((0..10_000u128).map(|i| PointKey::Uuid(i << 100)));
        let starts = plan_now(4, &ids);
        let at = starts
            .iter()
            .position(|s| *s == PointKey::Uuid(0))
            .expect("a UUID start");
        assert_eq!(at, 2, "3 ranges of numbers, 1 of UUIDs: {starts:?}");
        assert!(starts.is_sorted());
    }

    #[test]
    fn a_backlog_gives_back_what_it_was_given_in_order_across_its_temp_file() {
        let keys: Vec<PointKey> = (0..1000u64)
            .map(|i| {
                if i % 2 == 0 {
                    PointKey::Num(i)
                } else {
                    PointKey::Uuid(u128::from(i) << 64 | 7)
                }
            })
            .collect();
        let mut b = Backlog::with_cap(64);
        for page in keys.chunks(30) {
            b.push(page.to_vec()).unwrap();
        }
        let mut back = Vec::new();
        b.drain(&mut |p| back.extend(p)).unwrap();
        assert_eq!(back, keys);
    }

    type Ids = std::sync::Arc<BTreeSet<PointKey>>;

    /// A scroll as Qdrant answers it: `page` ids from the offset on (a lower bound, present
    /// or not), and the id after them as the next offset.
    fn fetch_of(
        ids: &Ids,
        page: usize,
    ) -> impl Fn(Option<PointKey>) -> std::future::Ready<Result<Page<PointKey>, ()>>
    + Clone
    + Send
    + Sync
    + 'static {
        let ids = ids.clone();
        move |offset| {
            let from = offset.unwrap_or(PointKey::Num(0));
            let mut it = ids.range(from..).copied();
            let keys: Vec<PointKey> = it.by_ref().take(page).collect();
            std::future::ready(Ok((keys, it.next().map(Some))))
        }
    }

    async fn read_all(ids: &Ids, starts: &[PointKey], page: usize) -> Vec<PointKey> {
        let mut out = Vec::new();
        let mut sink = Ordered::new(starts.len() + 1, |p: Vec<PointKey>| out.extend(p));
        run(
            starts,
            fetch_of(ids, page),
            |_: Failure<()>| OpError::invalid("failed"),
            &mut sink,
        )
        .await
        .expect("scrolled");
        out
    }

    fn mixed(nums: &[u64], uuids: &[u128]) -> Ids {
        let mut ids: BTreeSet<PointKey> = nums.iter().map(|&n| PointKey::Num(n)).collect();
        ids.extend(uuids.iter().map(|&u| PointKey::Uuid(u)));
        std::sync::Arc::new(ids)
    }

    #[tokio::test]
    async fn ids_on_and_around_each_boundary_come_once_in_order() {
        let b = [
            PointKey::Num(100),
            PointKey::Num(u64::MAX),
            PointKey::Uuid(0),
            PointKey::Uuid(1 << 127),
        ];
        let ids = mixed(
            &[0, 99, 100, 101, u64::MAX - 1, u64::MAX],
            &[0, 1, (1 << 127) - 1, 1 << 127, (1 << 127) + 1, u128::MAX],
        );
        let want: Vec<PointKey> = ids.iter().copied().collect();
        for page in 1..=4 {
            for n in 0..=b.len() {
                // Every subset of consecutive boundaries, so ranges start on and between ids.
                for first in 0..=b.len() - n {
                    let starts = &b[first..first + n];
                    assert_eq!(
                        read_all(&ids, starts, page).await,
                        want,
                        "{starts:?}, page {page}"
                    );
                }
            }
        }
        // Boundaries where no id is: ranges start between ids and some stay empty.
        let gaps = [
            PointKey::Num(50),
            PointKey::Num(51),
            PointKey::Num(1 << 40),
            PointKey::Uuid(5),
        ];
        assert_eq!(read_all(&ids, &gaps, 1).await, want);
    }

    #[tokio::test]
    async fn planned_ranges_read_every_id_once_whatever_the_collection() {
        let cases: Vec<Ids> = vec![
            mixed(&[], &[]),
            mixed(&[7], &[]),
            mixed(&[], &[42]),
            mixed(&[0, u64::MAX], &[0, u128::MAX]),
            mixed(&(0..1000).collect::<Vec<_>>(), &[]),
            mixed(
                &(0..300).map(|i| i * 1_000_003).collect::<Vec<_>>(),
                &(0..700u128)
                    .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835))
                    .collect::<Vec<_>>(),
            ),
            // UUIDs time-ordered in a narrow band, as UUIDv7 are.
            mixed(
                &[],
                &(0..500u128)
                    .map(|i| (0x018f_u128 << 112) | (i << 64))
                    .collect::<Vec<_>>(),
            ),
        ];
        for ids in &cases {
            let want: Vec<PointKey> = ids.iter().copied().collect();
            for k in [1, 2, 3, 8, 2000] {
                let probe = |from: PointKey, n: u32| {
                    std::future::ready(Ok::<_, ()>(
                        ids.range(from..)
                            .take(n as usize)
                            .copied()
                            .collect::<Vec<_>>(),
                    ))
                };
                let starts = plan(k, probe).await.unwrap();
                assert!(starts.len() < k.max(1), "k={k}: {} starts", starts.len());
                assert!(starts.windows(2).all(|w| w[0] < w[1]), "{starts:?}");
                for page in [1, 3, 100] {
                    assert_eq!(
                        read_all(ids, &starts, page).await,
                        want,
                        "k={k}, page {page}"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn a_failed_page_read_fails_the_scroll() {
        let ids = mixed(&(0..100).collect::<Vec<_>>(), &[]);
        let good = fetch_of(&ids, 10);
        let fetch = move |offset: Option<PointKey>| {
            if offset == Some(PointKey::Num(60)) {
                std::future::ready(Err("refused"))
            } else {
                let (keys, next) = good(offset).into_inner().unwrap();
                std::future::ready(Ok((keys, next)))
            }
        };
        let mut sink = Ordered::new(2, |_: Vec<PointKey>| {});
        let err = run(
            &[PointKey::Num(50)],
            fetch,
            |f| match f {
                Failure::Read(e) => OpError::invalid(e),
                _ => OpError::invalid("other"),
            },
            &mut sink,
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("refused"), "{err}");
    }
}
