//! The Watch service: one bidirectional stream carries many watchers (etcd:
//! api/v3rpc/watch.go). The member's watchable store matches events; this file keeps the
//! stream protocol: create, cancel and progress requests, created/canceled responses,
//! prev_kv lookups, fragments and periodic progress notifications.
//!
//! Everything the store tells the stream (events, compaction cancels, progress) arrives in
//! one channel and is sent in that order, so a progress notification always follows the
//! events it covers (etcd sends progress through the same channel as events).

use std::collections::HashMap;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use prost::Message;
use tokio::sync::mpsc;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use crate::proto::etcdserverpb::{
    watch_create_request::FilterType, watch_request::RequestUnion, watch_server::Watch,
    WatchCreateRequest, WatchRequest, WatchResponse,
};
use crate::proto::mvccpb::{event::EventType, Event};
use crate::server::{KeyRange, Member, Notice, WatchSpec, WatchStream as StoreStream, WatcherId};

/// etcd: clientv3.InvalidWatchID, for responses that belong to no watcher.
const INVALID_WATCH_ID: i64 = -1;
/// Notices queued per stream before its watchers fall back to catch-up from the store.
const NOTICE_QUEUE: usize = 256;
const OUT_QUEUE: usize = 128;
const DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";
const EMPTY_RANGE: &str = "mvcc: watcher range is empty";

pub struct WatchService {
    pub member: Arc<Member>,
}

#[tonic::async_trait]
impl Watch for WatchService {
    async fn watch(
        &self,
        req: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<BoxStream<WatchResponse>>, Status> {
        let opened = Opened {
            token: super::auth::token(&req),
            cert_cn: super::auth::cert_cn(&req),
            require_leader: super::requires_leader(req.metadata()),
        };
        Ok(Response::new(serve(
            self.member.clone(),
            opened,
            req.into_inner(),
        )))
    }
}

/// What a watch stream was opened with, whatever its transport.
#[derive(Debug, Default)]
pub struct Opened {
    /// The caller's token: each create is checked for its user.
    pub token: Option<String>,
    /// The client certificate's common name, the user when no token came.
    pub cert_cn: Option<String>,
    /// etcd's `hasleader` metadata: end the stream once the member has no leader.
    pub require_leader: bool,
}

/// Serve one watch stream: requests from `inbound` (gRPC's stream, or the JSON gateway's
/// decoded body), responses in the returned stream.
pub fn serve<S>(member: Arc<Member>, opened: Opened, inbound: S) -> BoxStream<WatchResponse>
where
    S: Stream<Item = Result<WatchRequest, Status>> + Send + Unpin + 'static,
{
    let (out, rx) = mpsc::channel(OUT_QUEUE);
    let (mut stream, notices) = WatchStream::new(member.clone(), out);
    stream.token = opened.token;
    stream.cert_cn = opened.cert_cn;
    tokio::spawn(stream.run(inbound, notices));
    super::until_stopped(&member, rx, opened.require_leader)
}

/// What the stream keeps per watcher.
struct Local {
    id: WatcherId,
    prev_kv: bool,
    fragment: bool,
    progress_notify: bool,
    /// No events since the last progress tick (etcd elides progress for busy watchers).
    idle: bool,
    /// Cancelled by a compaction: it gets nothing more, but its id stays taken on this
    /// stream until the client cancels it, as in etcd's watchStream.
    compacted: bool,
}

struct WatchStream {
    member: Arc<Member>,
    out: mpsc::Sender<Result<WatchResponse, Status>>,
    store: StoreStream,
    watchers: HashMap<i64, Local>,
    next_auto_id: i64,
    /// A progress request was handed to the store and not answered yet.
    deferred_progress: bool,
    /// The token the stream was opened with: each create is checked for its user.
    token: Option<String>,
    /// The client certificate's common name, the user when no token came.
    cert_cn: Option<String>,
}

impl WatchStream {
    fn new(
        member: Arc<Member>,
        out: mpsc::Sender<Result<WatchResponse, Status>>,
    ) -> (Self, mpsc::Receiver<Notice>) {
        let (store, rx) = member.new_watch_stream(NOTICE_QUEUE);
        let s = WatchStream {
            member,
            out,
            store,
            watchers: HashMap::new(),
            next_auto_id: 0,
            deferred_progress: false,
            token: None,
            cert_cn: None,
        };
        (s, rx)
    }
}

impl WatchStream {
    /// Serve one stream until the client goes away; then drop its watchers.
    async fn run<S>(mut self, mut inbound: S, mut notices: mpsc::Receiver<Notice>)
    where
        S: Stream<Item = Result<WatchRequest, Status>> + Send + Unpin,
    {
        let s = &mut self;
        let mut progress = tokio::time::interval(s.member.progress_notify_interval());
        progress.tick().await;
        let mut reading = true;
        loop {
            let ok = tokio::select! {
                req = inbound.next(), if reading => match req {
                    Some(Ok(r)) => s.handle_request(r).await,
                    // A client that closed its sending side still gets its events, as
                    // from etcd; the stream ends when the client goes away (`out` closes).
                    None => {
                        reading = false;
                        true
                    }
                    // etcd ends the stream with the read error (INTERNAL for a message
                    // that does not decode), never with OK.
                    Some(Err(status)) => {
                        let _ = s.out.send(Err(super::recv_error::as_etcd(status))).await;
                        false
                    }
                },
                Some(n) = notices.recv() => s.handle_notice(n).await,
                _ = progress.tick() => s.progress_notify(),
                _ = s.out.closed() => false,
            };
            if !ok {
                break;
            }
        }
        // Dropping the store's stream handle cancels its watchers.
    }

    async fn send(&self, resp: WatchResponse) -> bool {
        self.out.send(Ok(resp)).await.is_ok()
    }

    fn header(&self, rev: i64) -> Option<crate::proto::etcdserverpb::ResponseHeader> {
        Some(self.member.header(rev))
    }

    async fn handle_request(&mut self, req: WatchRequest) -> bool {
        match req.request_union {
            Some(RequestUnion::CreateRequest(c)) => self.create(c).await,
            Some(RequestUnion::CancelRequest(c)) => {
                let Some(l) = self.watchers.remove(&c.watch_id) else {
                    return true;
                };
                if !l.compacted {
                    self.store.cancel(l.id);
                }
                let rev = self.member.current_revision();
                self.send(WatchResponse {
                    header: self.header(rev),
                    watch_id: c.watch_id,
                    canceled: true,
                    ..Default::default()
                })
                .await
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                // Answered in the notice channel once every watcher is synced.
                if !self.deferred_progress {
                    self.deferred_progress = true;
                    self.store.request_progress_all();
                }
                true
            }
            None => true,
        }
    }

    async fn create(&mut self, c: WatchCreateRequest) -> bool {
        // etcd: an empty key means the smallest key, "\0".
        let key = if c.key.is_empty() {
            bytes::Bytes::from_static(&[0])
        } else {
            c.key.clone()
        };
        // etcd (watchStream.Watch): a range that ends at or before its key is refused
        // before anything else; "\0" as range end means every key from `key` on.
        let open_end = c.range_end.as_ref() == [0];
        if !c.range_end.is_empty() && !open_end && key.as_ref() >= c.range_end.as_ref() {
            return self.refuse_create(EMPTY_RANGE).await;
        }
        // etcd's isWatchPermitted: read permission on the range (a "\0" end is from the
        // key on), for the stream's token; refused as created and cancelled, with no
        // watcher (id -1) and the Go text of etcd's gRPC error as the reason.
        if let Err(reason) = self.watch_permitted(&key, &c.range_end) {
            return self.refuse_create(&reason).await;
        }
        let range = KeyRange::new(key, c.range_end.clone());
        let watch_id = if c.watch_id == 0 {
            while self.watchers.contains_key(&self.next_auto_id) {
                self.next_auto_id += 1;
            }
            self.next_auto_id += 1;
            self.next_auto_id - 1
        } else if self.watchers.contains_key(&c.watch_id) {
            return self.refuse_create(DUPLICATE_ID).await;
        } else {
            c.watch_id
        };
        // etcd: a negative start revision below the compaction point (-1 before any
        // compaction) is cancelled as compacted; -1 with nothing compacted watches from now.
        if c.start_revision < 0 {
            let compacted = self.member.compact_revision();
            if c.start_revision < compacted {
                return self.create_compacted(watch_id, compacted).await;
            }
        }
        let spec = WatchSpec {
            watch_id,
            range,
            start_rev: c.start_revision.max(0),
            no_put: c.filters.contains(&(FilterType::Noput as i32)),
            no_delete: c.filters.contains(&(FilterType::Nodelete as i32)),
        };
        let (id, rev) = self.store.watch(spec);
        self.watchers.insert(
            watch_id,
            Local {
                id,
                prev_kv: c.prev_kv,
                fragment: c.fragment,
                progress_notify: c.progress_notify,
                idle: true,
                compacted: false,
            },
        );
        self.send(WatchResponse {
            header: self.header(rev),
            watch_id,
            created: true,
            ..Default::default()
        })
        .await
    }

    fn watch_permitted(&self, key: &[u8], range_end: &[u8]) -> Result<(), String> {
        let checked = self
            .member
            .auth_info(self.token.as_deref(), self.cert_cn.as_deref())
            .and_then(|ai| {
                self.member
                    .check_range(&ai.unwrap_or_default(), key, range_end)
            });
        // etcd names invalid tokens, old auth revisions and missing users; anything else
        // is permission denied
        checked.map_err(|e| {
            let status = Status::from(e);
            let (code, text) = match status.code() {
                tonic::Code::Unauthenticated => ("Unauthenticated", status.message().to_string()),
                tonic::Code::InvalidArgument => ("InvalidArgument", status.message().to_string()),
                _ => (
                    "PermissionDenied",
                    format!(
                        "{}{}",
                        crate::rpctypes::PREFIX,
                        crate::rpctypes::PERMISSION_DENIED
                    ),
                ),
            };
            format!("rpc error: code = {code} desc = {text}")
        })
    }

    /// A create refused with `reason`: created and cancelled at once, no watcher.
    async fn refuse_create(&self, reason: &str) -> bool {
        let rev = self.member.current_revision();
        self.send(WatchResponse {
            header: self.header(rev),
            watch_id: INVALID_WATCH_ID,
            created: true,
            canceled: true,
            cancel_reason: reason.to_string(),
            ..Default::default()
        })
        .await
    }

    /// A watcher that starts below the compaction point: created, then cancelled with the
    /// compaction revision; its id stays taken until the client cancels it.
    async fn create_compacted(&mut self, watch_id: i64, compact_rev: i64) -> bool {
        let rev = self.member.current_revision();
        let created = WatchResponse {
            header: self.header(rev),
            watch_id,
            created: true,
            ..Default::default()
        };
        if !self.send(created).await {
            return false;
        }
        self.watchers.insert(
            watch_id,
            Local {
                id: WatcherId::default(),
                prev_kv: false,
                fragment: false,
                progress_notify: false,
                idle: true,
                compacted: true,
            },
        );
        self.send(WatchResponse {
            header: self.header(0),
            watch_id,
            canceled: true,
            compact_revision: compact_rev,
            ..Default::default()
        })
        .await
    }

    async fn handle_notice(&mut self, n: Notice) -> bool {
        match n {
            Notice::Compacted {
                watch_id,
                compact_rev,
            } => {
                match self.watchers.get_mut(&watch_id) {
                    Some(l) if !l.compacted => l.compacted = true,
                    _ => return true,
                }
                // etcd's compaction response carries no store revision in its header.
                self.send(WatchResponse {
                    header: self.header(0),
                    watch_id,
                    canceled: true,
                    compact_revision: compact_rev,
                    ..Default::default()
                })
                .await
            }
            Notice::Progress { watch_id, rev } => {
                let watch_id = match watch_id {
                    None => {
                        self.deferred_progress = false;
                        INVALID_WATCH_ID
                    }
                    Some(w) if self.watchers.contains_key(&w) => w,
                    Some(_) => return true,
                };
                self.send(WatchResponse {
                    header: self.header(rev),
                    watch_id,
                    ..Default::default()
                })
                .await
            }
            Notice::Events {
                watch_id,
                rev,
                events,
            } => {
                let Some(l) = self.watchers.get_mut(&watch_id) else {
                    return true;
                };
                l.idle = false;
                let (prev_kv, fragment) = (l.prev_kv, l.fragment);
                let mut events: Vec<Event> = events.into_iter().map(Arc::unwrap_or_clone).collect();
                if prev_kv {
                    for ev in &mut events {
                        self.attach_prev_kv(ev);
                    }
                }
                let resp = WatchResponse {
                    header: self.header(rev),
                    watch_id,
                    events,
                    ..Default::default()
                };
                if fragment {
                    // etcd's watch server allows the gRPC overhead on top of the request limit.
                    let max = self.member.settings.max_request_bytes as usize
                        + super::GRPC_OVERHEAD_BYTES;
                    for part in fragments(resp, max) {
                        if !self.send(part).await {
                            return false;
                        }
                    }
                    true
                } else {
                    self.send(resp).await
                }
            }
        }
    }

    /// The version before the event, unless the event created the key (etcd's sendLoop).
    fn attach_prev_kv(&self, ev: &mut Event) {
        let Some(kv) = &ev.kv else { return };
        let create = ev.r#type == EventType::Put as i32 && kv.create_revision == kv.mod_revision;
        if !create {
            ev.prev_kv = self.member.get_at(&kv.key, kv.mod_revision - 1);
        }
    }

    /// Periodic progress for watchers that asked for it and got no events since the last
    /// tick (etcd's progress map); the store sends it behind their events, if synced.
    fn progress_notify(&mut self) -> bool {
        for l in self
            .watchers
            .values_mut()
            .filter(|l| l.progress_notify && !l.compacted)
        {
            if l.idle {
                self.store.request_progress(l.id);
            }
            l.idle = true;
        }
        true
    }
}

/// Split a response whose size reaches `max` into fragments, never splitting an event
/// (etcd: sendFragments).
fn fragments(resp: WatchResponse, max: usize) -> Vec<WatchResponse> {
    if resp.encoded_len() < max || resp.events.len() < 2 {
        return vec![resp];
    }
    let mut out = Vec::new();
    let mut template = resp.clone();
    template.events = Vec::new();
    template.fragment = true;
    let mut cur = template.clone();
    for ev in resp.events {
        cur.events.push(ev);
        if cur.events.len() > 1 && cur.encoded_len() >= max {
            let last = cur.events.pop().expect("just pushed");
            out.push(std::mem::replace(&mut cur, template.clone()));
            cur.events.push(last);
        }
    }
    cur.fragment = false;
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mvccpb::KeyValue;

    #[test]
    fn fragments_keep_events_whole_and_mark_all_but_last() {
        let ev = |n: u8| Event {
            kv: Some(KeyValue {
                key: bytes::Bytes::from(vec![n]),
                value: bytes::Bytes::from(vec![0; 100]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let resp = WatchResponse {
            events: (0..10).map(ev).collect(),
            ..Default::default()
        };
        let parts = fragments(resp.clone(), 350);
        assert!(parts.len() > 1);
        assert!(parts[..parts.len() - 1].iter().all(|p| p.fragment));
        assert!(!parts.last().unwrap().fragment);
        let all: Vec<Event> = parts.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(all, resp.events);
        assert_eq!(fragments(resp.clone(), 1 << 20).len(), 1);
    }
}
