//! Group commit of proposals and read barriers.
//!
//! openraft 0.9 appends and fsyncs each client write on its own, with the raft core waiting
//! for the fsync. So commands are queued here, and every command that waited while the
//! previous batches were in flight rides one log entry ([`Command::batch`]): one append,
//! one fsync and one apply batch for all of them. Each still gets its own revision and its
//! own result. Linearizable reads share read barriers the same way: a read waits for a
//! barrier that started after it arrived, and one barrier serves every read waiting then.
//!
//! The queue is bounded: past [`MAX_QUEUED`] waiting commands a write is refused at once
//! with etcd's `too many requests` (etcd refuses when the applied index falls more than
//! 5,000 entries behind the committed one), so memory stays bounded under overload.

use std::sync::Arc;

use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::error::{Error, Result};
use super::forward::LeaderLink;
use crate::apply::{Applied, Command};

/// Batches in flight at once: one being applied while the next is appended.
const IN_FLIGHT: usize = 2;
/// At most this many commands, or about this many bytes, in one log entry.
const MAX_BATCH: usize = 2048;
const MAX_BATCH_BYTES: usize = 4 << 20;
/// Commands that may wait for a batch (etcd: maxGapBetweenApplyAndCommitIndex).
pub const MAX_QUEUED: usize = 5000;

type Waiter = oneshot::Sender<Result<Applied>>;

#[derive(Clone)]
pub struct Proposer {
    tx: mpsc::Sender<(Command, usize, Waiter)>,
    /// The batches in flight, shared with the loop: a write that finds the queue empty and
    /// nothing in flight is proposed from its own task, two task hand-offs fewer (a lone
    /// client's put), and the loop batches whatever queues behind it.
    slots: Arc<Semaphore>,
    direct: Option<(LeaderLink, Duration)>,
}

type Queue = mpsc::Receiver<(Command, usize, Waiter)>;

impl Proposer {
    /// Batches go to the leader through `link`, each with `timeout` to be applied.
    pub fn start(link: LeaderLink, timeout: Duration) -> Self {
        let (mut proposer, rx) = Self::with_queue(MAX_QUEUED);
        proposer.direct = Some((link.clone(), timeout));
        tokio::spawn(propose_loop(link, timeout, rx, proposer.slots.clone()));
        proposer
    }

    fn with_queue(bound: usize) -> (Self, Queue) {
        let (tx, rx) = mpsc::channel(bound);
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        let proposer = Self {
            tx,
            slots,
            direct: None,
        };
        (proposer, rx)
    }

    /// Queue one command (of `size` encoded bytes); refused when the queue is full.
    fn enqueue(&self, cmd: Command, size: usize) -> Result<oneshot::Receiver<Result<Applied>>> {
        let (tx, rx) = oneshot::channel();
        self.tx.try_send((cmd, size, tx)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Error::TooManyRequests,
            mpsc::error::TrySendError::Closed(_) => Error::Stopped,
        })?;
        Ok(rx)
    }

    /// Propose one command (of `size` encoded bytes) and wait for its apply result.
    pub async fn propose(&self, cmd: Command, size: usize) -> Result<Applied> {
        // Idle: nothing queued and nothing in flight, so a slot taken here never keeps a
        // batch of queued writes waiting.
        let idle = self.tx.capacity() == self.tx.max_capacity()
            && self.slots.available_permits() == IN_FLIGHT;
        if let (true, Some((link, timeout))) = (idle, &self.direct) {
            if let Ok(permit) = self.slots.clone().try_acquire_owned() {
                crate::metrics::PROPOSALS_PENDING.inc();
                let _pending = scopeguard_dec();
                let deadline = tokio::time::Instant::now() + *timeout;
                let result = link.write(cmd, deadline).await;
                drop(permit);
                if result.is_err() {
                    crate::metrics::PROPOSALS_FAILED.inc();
                }
                return result;
            }
        }
        let rx = self.enqueue(cmd, size)?;
        crate::metrics::PROPOSALS_PENDING.inc();
        let _pending = scopeguard_dec();
        let result = rx.await.map_err(|_| Error::Stopped)?;
        if result.is_err() {
            crate::metrics::PROPOSALS_FAILED.inc();
        }
        result
    }
}

/// Takes the proposal off `etcd_server_proposals_pending` however its wait ends (the
/// caller may be cancelled).
fn scopeguard_dec() -> impl Drop {
    struct Dec;
    impl Drop for Dec {
        fn drop(&mut self) {
            crate::metrics::PROPOSALS_PENDING.dec();
        }
    }
    Dec
}

async fn propose_loop(link: LeaderLink, timeout: Duration, mut rx: Queue, slots: Arc<Semaphore>) {
    while let Some(first) = rx.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut bytes = first.1;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(item) => {
                    bytes += item.1;
                    batch.push(item);
                }
                Err(_) => break,
            }
        }
        let link = link.clone();
        tokio::spawn(async move {
            let (cmds, waiters): (Vec<Command>, Vec<Waiter>) =
                batch.into_iter().map(|(c, _, w)| (c, w)).unzip();
            let single = cmds.len() == 1;
            let cmd = if single {
                cmds.into_iter().next().expect("one command")
            } else {
                Command::batch(cmds)
            };
            // On a follower the whole batch is one forward to the leader.
            let deadline = tokio::time::Instant::now() + timeout;
            let result = link.write(cmd, deadline).await;
            drop(permit);
            match result {
                Ok(data) => match (data, single) {
                    (Applied::Batch(results), false) => {
                        for (w, r) in waiters.into_iter().zip(results) {
                            let _ = w.send(Ok(r));
                        }
                    }
                    (applied, _) => {
                        for w in waiters {
                            let _ = w.send(Ok(applied.clone()));
                        }
                    }
                },
                Err(err) => {
                    for w in waiters {
                        let _ = w.send(Err(err.clone()));
                    }
                }
            }
        });
    }
}

/// Shared linearizable read barriers.
#[derive(Clone)]
pub struct ReadBarrier {
    tx: mpsc::UnboundedSender<oneshot::Sender<Result<()>>>,
}

impl ReadBarrier {
    /// Each barrier asks the leader for its read index through `link`, within `timeout`.
    pub fn start(link: LeaderLink, timeout: Duration) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<oneshot::Sender<Result<()>>>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut waiters = vec![first];
                while let Ok(w) = rx.try_recv() {
                    waiters.push(w);
                }
                let res = link.read_index(tokio::time::Instant::now() + timeout).await;
                for w in waiters {
                    let _ = w.send(res.clone());
                }
            }
        });
        Self { tx }
    }

    /// Wait until the local store has applied everything committed before this call.
    pub async fn wait(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(tx).map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::Request;
    use crate::proto::etcdserverpb::PutRequest;

    #[test]
    fn a_full_queue_refuses_with_too_many_requests() {
        let (p, mut rx) = Proposer::with_queue(3);
        let put = || Command::new(1, Request::Put(PutRequest::default()));
        let mut waiting = Vec::new();
        for _ in 0..3 {
            waiting.push(p.enqueue(put(), 1).expect("room in the queue"));
        }
        assert_eq!(p.enqueue(put(), 1).err(), Some(Error::TooManyRequests));
        // Once the loop takes one, there is room again.
        assert!(rx.try_recv().is_ok());
        assert!(p.enqueue(put(), 1).is_ok());
        drop(rx);
        assert_eq!(p.enqueue(put(), 1).err(), Some(Error::Stopped));
    }
}
