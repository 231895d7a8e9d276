//! Lanes for group commit: requests that arrive together are handed, as one batch, to a
//! function that decides them in one database transaction, so that a burst costs one commit
//! (one WAL flush) instead of one each. Bank callbacks (`banks::group_commit`) and new orders
//! (`payments::group_commit`) use them.
//!
//! A request goes to the lane its key chooses, so that every request about one thing (an
//! order, an idempotency key) meets the others in one lane, in arrival order, instead of
//! waiting for another lane's lock. Each lane has its own queue and at most one batch in
//! flight: it takes what waits in its queue when its previous batch has finished (at most
//! `max_batch`); under light load that is one request, which costs what it cost alone.

use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use tokio::sync::mpsc;

/// Requests queued for one lane beyond this wait to be queued (the HTTP request waits).
const QUEUE_PER_LANE: usize = 1_024;

/// The lanes of one kind of request in this process.
pub struct Lanes<J> {
    lanes: Vec<mpsc::Sender<J>>,
}

/// The lane is gone: it panicked, or the process is stopping.
#[derive(Debug)]
pub struct LaneStopped;

impl<J: Send + 'static> Lanes<J> {
    /// Starts `count` lanes on the current Tokio runtime; each hands its batches to `decide`,
    /// which must answer every request of a batch before it returns. The lanes stop when the
    /// last handle is dropped, after deciding every request queued.
    ///
    /// `gather` is how long a lane waits for more requests after the first of a batch: zero
    /// takes only those already waiting, so that a lone request is never delayed.
    pub fn start<F, Fut>(count: usize, max_batch: usize, gather: Duration, decide: F) -> Self
    where
        F: Fn(Vec<J>) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        assert!(
            count > 0 && max_batch > 0,
            "at least one lane and one request"
        );
        let lanes = (0..count)
            .map(|_| {
                let (sender, queue) = mpsc::channel(QUEUE_PER_LANE);
                tokio::spawn(run_lane(queue, max_batch, gather, decide.clone()));
                sender
            })
            .collect();
        Lanes { lanes }
    }

    /// Queues `job` in the lane that `key` chooses.
    pub async fn send(&self, key: impl Hash, job: J) -> Result<(), LaneStopped> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let lane = &self.lanes[(hasher.finish() % self.lanes.len() as u64) as usize];
        lane.send(job).await.map_err(|_| LaneStopped)
    }
}

async fn run_lane<J, F, Fut>(
    mut queue: mpsc::Receiver<J>,
    max_batch: usize,
    gather: Duration,
    decide: F,
) where
    F: Fn(Vec<J>) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut jobs = Vec::with_capacity(max_batch);
    while queue.recv_many(&mut jobs, max_batch).await > 0 {
        if !gather.is_zero() {
            let deadline = tokio::time::Instant::now() + gather;
            while jobs.len() < max_batch {
                let wanted = max_batch - jobs.len();
                match tokio::time::timeout_at(deadline, queue.recv_many(&mut jobs, wanted)).await {
                    Ok(received) if received > 0 => continue,
                    _ => break,
                }
            }
        }
        decide(std::mem::replace(&mut jobs, Vec::with_capacity(max_batch))).await;
    }
}
