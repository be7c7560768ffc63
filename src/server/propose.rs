//! Group commit of proposals and read barriers.
//!
//! openraft 0.9 appends and fsyncs each client write on its own, with the raft core waiting
//! for the fsync. So commands are queued here, and every command that waited while the
//! previous batches were in flight rides one log entry ([`Command::batch`]): one append,
//! one fsync and one apply batch for all of them. Each still gets its own revision and its
//! own result. Linearizable reads share read barriers the same way: a read waits for a
//! barrier that started after it arrived, and one barrier serves every read waiting then.

use std::sync::Arc;

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::error::{Error, Result};
use crate::apply::{Applied, Command};
use crate::raft::Raft;

/// Batches in flight at once: one being applied while the next is appended.
const IN_FLIGHT: usize = 2;
/// At most this many commands, or about this many bytes, in one log entry.
const MAX_BATCH: usize = 2048;
const MAX_BATCH_BYTES: usize = 4 << 20;

type Waiter = oneshot::Sender<Result<Applied>>;

#[derive(Clone)]
pub struct Proposer {
    tx: mpsc::UnboundedSender<(Command, usize, Waiter)>,
}

impl Proposer {
    pub fn start(raft: Raft) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(propose_loop(raft, rx));
        Self { tx }
    }

    /// Propose one command (of `size` encoded bytes) and wait for its apply result.
    pub async fn propose(&self, cmd: Command, size: usize) -> Result<Applied> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((cmd, size, tx)).map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }
}

async fn propose_loop(raft: Raft, mut rx: mpsc::UnboundedReceiver<(Command, usize, Waiter)>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
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
        let raft = raft.clone();
        tokio::spawn(async move {
            let (cmds, waiters): (Vec<Command>, Vec<Waiter>) =
                batch.into_iter().map(|(c, _, w)| (c, w)).unzip();
            let single = cmds.len() == 1;
            let cmd = if single {
                cmds.into_iter().next().expect("one command")
            } else {
                Command::batch(cmds)
            };
            let result = raft.client_write(cmd).await;
            drop(permit);
            match result {
                Ok(resp) => match (resp.data, single) {
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
                Err(e) => {
                    let err = match e {
                        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
                            Error::NoLeader
                        }
                        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                            Error::Internal(e.to_string())
                        }
                        RaftError::Fatal(_) => Error::Stopped,
                    };
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
    pub fn start(raft: Raft) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<oneshot::Sender<Result<()>>>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut waiters = vec![first];
                while let Ok(w) = rx.try_recv() {
                    waiters.push(w);
                }
                let res = match raft.ensure_linearizable().await {
                    Ok(_) => Ok(()),
                    Err(RaftError::Fatal(_)) => Err(Error::Stopped),
                    Err(RaftError::APIError(_)) => Err(Error::NoLeader),
                };
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
