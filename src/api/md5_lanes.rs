//! MD5 of many uploads at once, in the SIMD lanes of one core.
//!
//! S3 makes every PUT compute the MD5 of its body (the ETag), and MD5 is a chain: one
//! stream cannot go faster than one 64-byte block after another (~0.7 GB/s per core here).
//! Independent streams can share a core's vector unit instead (8 lanes with AVX2, 16 with
//! AVX-512, several GB/s in all: `md5-many`). A shard serves many uploads at once, so each
//! upload hands its full blocks to the shard's [`Md5Lanes`], whose worker hashes whatever
//! blocks are waiting, one lane per upload, in one pass.
//!
//! Order within an upload is kept: jobs are queued in the order an upload submits them, and
//! a round takes at most one job per upload (a later block of the same upload waits for the
//! next round).
//!
//! A shard is one thread, so blocks pile up only while the worker waits: hashing whatever
//! is queued as soon as one block arrives gave rounds of ~2 lanes under load (measured),
//! where the SIMD kernels are no faster than one stream. So the worker gathers: it starts a
//! round once every upload in progress on the shard (up to [`ROUND_LANES_TARGET`]) has a
//! block queued, or [`GATHER_MAX`] after the round's first block. A lone upload is hashed
//! at once; concurrent ones wait at most `GATHER_MAX` per block, and an upload keeps reading
//! meanwhile (its blocks are written a few at a time behind it).
//!
//! The queue is bounded: at most [`QUEUE_JOBS_MAX`] blocks are queued or being hashed, and
//! an upload that finds it full waits for room before it queues its block (and so before it
//! reads more of its body).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::channel::{mpsc, oneshot};
use futures::StreamExt;
use glommio::sync::{Semaphore, StaticPermit};
use md5_many::{Md5Many, Md5State};

use crate::storage::BlockBuf;

/// Lanes in one round at most (three AVX-512 groups).
const ROUND_LANES_MAX: usize = 48;
/// A round starts once this many uploads (or all of those in progress) have a block queued.
const ROUND_LANES_TARGET: usize = 16;
/// ... or this long after its first block was queued.
const GATHER_MAX: Duration = Duration::from_millis(20);
/// Blocks queued or being hashed at most: two full rounds.
pub const QUEUE_JOBS_MAX: usize = 2 * ROUND_LANES_MAX;

/// One upload's running MD5, shared between the upload and the shard's worker.
#[derive(Clone)]
pub struct Md5Stream(Rc<StreamState>);

struct StreamState {
    md5: RefCell<Md5State>,
    /// The shard's count of uploads in progress, which counts this one from its first
    /// block (a small upload kept inline never uses the lanes, so no round waits for it)
    /// until it ends.
    active: Option<Rc<Cell<usize>>>,
    counted: Cell<bool>,
}

impl Drop for StreamState {
    fn drop(&mut self) {
        if let (Some(active), true) = (&self.active, self.counted.get()) {
            active.set(active.get() - 1);
        }
    }
}

impl Md5Stream {
    /// A stream of an upload on `lanes`' shard.
    pub fn new(lanes: &Md5Lanes) -> Self {
        Self::with_count(Some(Rc::clone(&lanes.active)))
    }

    fn with_count(active: Option<Rc<Cell<usize>>>) -> Self {
        Self(Rc::new(StreamState {
            md5: RefCell::new(Md5State::new()),
            active,
            counted: Cell::new(false),
        }))
    }

    fn count_once(&self) {
        if let (Some(active), false) = (&self.0.active, self.0.counted.get()) {
            active.set(active.get() + 1);
            self.0.counted.set(true);
        }
    }

    /// Hashes `data` here and now (bytes that are not worth a round trip to the worker).
    /// The caller must have no job of this stream still queued.
    pub fn update(&self, data: &[u8]) {
        self.0.md5.borrow_mut().update(data);
    }

    /// The digest of everything hashed so far. The caller must have awaited every job.
    pub fn finish(&self) -> [u8; 16] {
        self.0.md5.borrow().finalize()
    }
}

struct Job {
    stream: Md5Stream,
    data: BlockBuf,
    done: oneshot::Sender<BlockBuf>,
    /// The job's room in the queue, given back once it is answered.
    _room: Option<StaticPermit>,
}

/// A shard's MD5 worker: see the module's text.
pub struct Md5Lanes {
    tx: mpsc::UnboundedSender<Job>,
    /// Room in the queue: `QUEUE_JOBS_MAX` jobs.
    room: Rc<Semaphore>,
    counters: Rc<LaneCounters>,
    /// Uploads in progress on the shard (live [`Md5Stream`]s that have sent a block).
    active: Rc<Cell<usize>>,
}

/// A block on its way through the lanes: hashed already, or queued.
pub struct Hashing(Result<BlockBuf, oneshot::Receiver<BlockBuf>>);

impl Hashing {
    /// The block's bytes, once they are hashed.
    pub async fn done(self) -> BlockBuf {
        match self.0 {
            Ok(data) => data,
            Err(rx) => rx.await.expect("the MD5 worker answers every job it takes"),
        }
    }
}

/// How full the rounds were.
#[derive(Default)]
pub struct LaneCounters {
    /// Rounds hashed.
    pub rounds: Cell<u64>,
    /// Jobs hashed (the mean lanes per round is `jobs / rounds`).
    pub jobs: Cell<u64>,
    /// Bytes hashed.
    pub bytes: Cell<u64>,
}

impl Md5Lanes {
    /// Starts the worker on the current executor. It ends when this value is dropped.
    pub fn start() -> Self {
        let (tx, rx) = mpsc::unbounded();
        let counters = Rc::new(LaneCounters::default());
        let active = Rc::new(Cell::new(0));
        glommio::spawn_local(worker(rx, Rc::clone(&counters), Rc::clone(&active))).detach();
        Self {
            tx,
            room: Rc::new(Semaphore::new(QUEUE_JOBS_MAX as u64)),
            counters,
            active,
        }
    }

    /// Waits for room in the queue, then queues `data` as the next bytes of `stream`; the
    /// returned [`Hashing`] gives the bytes back once they are hashed. Call it in the order
    /// of the stream's bytes, each call once the one before has returned.
    pub async fn submit(&self, stream: &Md5Stream, data: BlockBuf) -> Hashing {
        stream.count_once();
        // An error means the semaphore is closed, which nothing does: queue anyway.
        let room = self.room.acquire_static_permit(1).await.ok();
        let (done, rx) = oneshot::channel();
        let job = Job {
            stream: stream.clone(),
            data,
            done,
            _room: room,
        };
        match self.tx.unbounded_send(job) {
            Ok(()) => Hashing(Err(rx)),
            // The worker is gone (the shard is stopping): hash here.
            Err(e) => {
                let job = e.into_inner();
                job.stream.update(&job.data);
                Hashing(Ok(job.data))
            }
        }
    }

    pub fn counters(&self) -> &LaneCounters {
        &self.counters
    }
}

async fn worker(
    mut rx: mpsc::UnboundedReceiver<Job>,
    counters: Rc<LaneCounters>,
    active: Rc<Cell<usize>>,
) {
    let engine = Md5Many::new();
    let mut queue: VecDeque<Job> = VecDeque::new();
    while let Some(job) = rx.next().await {
        queue.push_back(job);
        let every_upload =
            |q: &VecDeque<Job>| distinct_streams(q) >= active.get().clamp(1, ROUND_LANES_TARGET);
        crate::gather::gather(
            &mut rx,
            &mut queue,
            Instant::now() + GATHER_MAX,
            every_upload,
        )
        .await;
        while !queue.is_empty() {
            let round = take_round(&mut queue);
            hash_round(engine, &round, &counters);
            for job in round {
                let _ = job.done.send(job.data);
            }
            glommio::yield_if_needed().await;
        }
    }
}

fn distinct_streams(queue: &VecDeque<Job>) -> usize {
    let mut seen: Vec<*const StreamState> = Vec::new();
    for job in queue {
        let p = Rc::as_ptr(&job.stream.0);
        if !seen.contains(&p) {
            seen.push(p);
        }
    }
    seen.len()
}

/// The first job of each stream, in queue order, up to the lane limit; a stream whose
/// earlier job stays queued keeps its later ones queued too.
fn take_round(queue: &mut VecDeque<Job>) -> Vec<Job> {
    let mut round: Vec<Job> = Vec::new();
    let mut rest: VecDeque<Job> = VecDeque::new();
    let same = |a: &Job, b: &Job| Rc::ptr_eq(&a.stream.0, &b.stream.0);
    for job in queue.drain(..) {
        let taken = round.iter().any(|j| same(j, &job));
        let held = rest.iter().any(|j| same(j, &job));
        if round.len() < ROUND_LANES_MAX && !taken && !held {
            round.push(job);
        } else {
            rest.push_back(job);
        }
    }
    *queue = rest;
    round
}

fn hash_round(engine: Md5Many, round: &[Job], counters: &LaneCounters) {
    let mut states: Vec<Md5State> = round.iter().map(|j| *j.stream.0.md5.borrow()).collect();
    let inputs: Vec<&[u8]> = round.iter().map(|j| &j.data[..]).collect();
    hash_lanes(engine, &mut states, &inputs);
    for (job, state) in round.iter().zip(states) {
        *job.stream.0.md5.borrow_mut() = state;
    }
    counters.rounds.set(counters.rounds.get() + 1);
    counters.jobs.set(counters.jobs.get() + round.len() as u64);
    let bytes: usize = inputs.iter().map(|d| d.len()).sum();
    counters.bytes.set(counters.bytes.get() + bytes as u64);
}

/// Advances each state over its input. `md5-many` 0.1.0-alpha.4 is fast only on full
/// native widths of equal-length inputs (measured here on 1 MiB inputs: 8 lanes 4.7 GB/s,
/// 16 lanes 6.5; 5 to 7 lanes 0.18–0.25; 8 lanes with one shorter input 0.36; one stream
/// 0.78). So inputs are grouped by length, groups are padded to 8 or 16 lanes with
/// throwaway states hashing a copy of a real input, and a lone input is hashed alone.
fn hash_lanes(engine: Md5Many, states: &mut [Md5State], inputs: &[&[u8]]) {
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_by_key(|&i| inputs[i].len());
    for group in order.chunk_by(|&a, &b| inputs[a].len() == inputs[b].len()) {
        for part in group.chunks(16) {
            if part.len() == 1 {
                states[part[0]].update(inputs[part[0]]);
                continue;
            }
            let width = if part.len() <= 8 { 8 } else { 16 };
            let mut lane_states: Vec<Md5State> = part.iter().map(|&i| states[i]).collect();
            lane_states.resize(width, Md5State::new());
            let mut lane_inputs: Vec<&[u8]> = part.iter().map(|&i| inputs[i]).collect();
            lane_inputs.resize(width, inputs[part[0]]);
            engine.update_many(&mut lane_states, &lane_inputs);
            for (&i, state) in part.iter().zip(lane_states) {
                states[i] = state;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest;

    fn job(stream: &Md5Stream, data: Vec<u8>) -> (Job, oneshot::Receiver<BlockBuf>) {
        let (done, rx) = oneshot::channel();
        let job = Job {
            stream: stream.clone(),
            data: BlockBuf::from(&data[..]),
            done,
            _room: None,
        };
        (job, rx)
    }

    #[test]
    fn a_round_takes_one_job_per_stream_in_order() {
        let a = Md5Stream::with_count(None);
        let b = Md5Stream::with_count(None);
        let mut queue: VecDeque<Job> = [
            job(&a, vec![1]).0,
            job(&a, vec![2]).0,
            job(&b, vec![3]).0,
            job(&a, vec![4]).0,
            job(&b, vec![5]).0,
        ]
        .into();
        let firsts: Vec<u8> = take_round(&mut queue).iter().map(|j| j.data[0]).collect();
        assert_eq!(firsts, [1, 3]);
        let seconds: Vec<u8> = take_round(&mut queue).iter().map(|j| j.data[0]).collect();
        assert_eq!(seconds, [2, 5]);
        let thirds: Vec<u8> = take_round(&mut queue).iter().map(|j| j.data[0]).collect();
        assert_eq!(thirds, [4]);
        assert!(queue.is_empty());
    }

    #[test]
    fn a_stream_held_back_by_the_lane_limit_keeps_its_order() {
        let streams: Vec<Md5Stream> = (0..ROUND_LANES_MAX + 1)
            .map(|_| Md5Stream::with_count(None))
            .collect();
        let mut queue: VecDeque<Job> = VecDeque::new();
        for (i, s) in streams.iter().enumerate() {
            queue.push_back(job(s, vec![i as u8, 0]).0);
        }
        let last = streams.last().unwrap();
        queue.push_back(job(last, vec![ROUND_LANES_MAX as u8, 1]).0);
        assert_eq!(take_round(&mut queue).len(), ROUND_LANES_MAX);
        let next: Vec<Vec<u8>> = take_round(&mut queue)
            .into_iter()
            .map(|j| j.data.to_vec())
            .collect();
        assert_eq!(next, [vec![ROUND_LANES_MAX as u8, 0]]);
        let after: Vec<Vec<u8>> = take_round(&mut queue)
            .into_iter()
            .map(|j| j.data.to_vec())
            .collect();
        assert_eq!(after, [vec![ROUND_LANES_MAX as u8, 1]]);
    }

    #[test]
    fn an_upload_counts_as_active_from_its_first_block_until_it_ends() {
        let active = Rc::new(Cell::new(0));
        let stream = Md5Stream::with_count(Some(Rc::clone(&active)));
        stream.update(b"inline bytes are hashed here");
        assert_eq!(active.get(), 0);
        stream.count_once();
        let clone = stream.clone();
        clone.count_once();
        assert_eq!(active.get(), 1);
        drop(stream);
        assert_eq!(active.get(), 1, "a queued job still holds the stream");
        drop(clone);
        assert_eq!(active.get(), 0);
    }

    #[test]
    fn a_full_queue_makes_the_next_block_wait() {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(|| async {
                let lanes = Md5Lanes::start();
                let stream = Md5Stream::new(&lanes);
                let mut body = Vec::new();
                let mut queued = Vec::new();
                for i in 0..QUEUE_JOBS_MAX {
                    body.push(i as u8);
                    queued.push(lanes.submit(&stream, BlockBuf::from(&[i as u8][..])).await);
                }
                assert_eq!(lanes.room.available(), 0, "the queue is full");
                // Room comes back as the worker answers; the next block waits for it.
                body.push(0xff);
                let last = lanes.submit(&stream, BlockBuf::from(&[0xff][..])).await;
                for hashing in queued {
                    hashing.done().await;
                }
                last.done().await;
                let want: [u8; 16] = md5::Md5::digest(&body).into();
                assert_eq!(stream.finish(), want);
                assert_eq!(lanes.room.available(), QUEUE_JOBS_MAX as u64);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    proptest::proptest! {
        /// Uploads of random lengths, cut into random blocks and hashed in rounds of
        /// whatever is queued, end with the digest a plain MD5 gives.
        #[test]
        fn rounds_give_the_plain_md5(
            lens in proptest::collection::vec(0usize..300_000, 1..12),
            cuts in proptest::collection::vec(1usize..100_000, 1..8),
            seed in 0u64..1000,
        ) {
            let engine = Md5Many::new();
            let counters = LaneCounters::default();
            let bodies: Vec<Vec<u8>> = lens
                .iter()
                .enumerate()
                .map(|(i, &n)| (0..n).map(|j| (j as u64 * 31 + i as u64 + seed) as u8).collect())
                .collect();
            let streams: Vec<Md5Stream> =
                bodies.iter().map(|_| Md5Stream::with_count(None)).collect();
            let mut queue = VecDeque::new();
            let mut offsets = vec![0usize; bodies.len()];
            let mut step = 0;
            loop {
                // Each stream queues its next piece (or two), as uploads would.
                let mut queued = false;
                for (i, body) in bodies.iter().enumerate() {
                    for _ in 0..1 + (step + i) % 2 {
                        if offsets[i] < body.len() {
                            let n = cuts[(step + i) % cuts.len()].min(body.len() - offsets[i]);
                            queue.push_back(job(&streams[i], body[offsets[i]..][..n].to_vec()).0);
                            offsets[i] += n;
                            queued = true;
                        }
                    }
                }
                if !queued && queue.is_empty() {
                    break;
                }
                let round = take_round(&mut queue);
                hash_round(engine, &round, &counters);
                step += 1;
            }
            for (body, stream) in bodies.iter().zip(&streams) {
                let want: [u8; 16] = md5::Md5::digest(body).into();
                proptest::prop_assert_eq!(stream.finish(), want);
            }
        }
    }
}
