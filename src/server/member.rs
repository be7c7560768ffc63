//! The member: owns the backend, the raft node and the stores, and serves requests through
//! them independent of any transport (etcd: etcdserver/server.go, v3_server.go).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;

use super::error::{Error, Result};
use super::forward::LeaderLink;
use super::ids::{self, IdGenerator};
use super::peers::{bind_peer_port, force_new_cluster, join_existing, serve_peers, watch_removed};
use super::propose::{Proposer, ReadBarrier};
use super::quota;
use super::raft_tasks::{promote_loop, snapshot_loop, watch_raft_fatal};
use crate::apply::{self, Applied, Command, Request};
use crate::auth::{AuthInfo, JwtTokens};
use crate::config::Config;
use crate::lease::Lessor;
pub use crate::membership::MemberRecord;
use crate::mvcc::{
    compaction, KeyRange, Notice, PinnedView, RangeOptions, WatchStream, WatchableStore,
};
use crate::proto::etcdserverpb::{
    request_op, AlarmRequest, AlarmResponse, CompactionRequest, CompactionResponse,
    DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest, LeaseGrantResponse,
    LeaseRevokeRequest, LeaseRevokeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
    ResponseHeader, TxnRequest, TxnResponse,
};
use crate::proto::metastorepb::{MemberAttrSetRequest, MemberAttributes};
use crate::proto::mvccpb::KeyValue;
use crate::raft::member_change::{ClusterHealth, Limits};
use crate::raft::peer_service::PeerService;
use crate::raft::{LogStore, MemberNode, Network, Raft, SharedState, StateMachine};
use crate::storage::{Backend, SledBackend};

fn has_leader(m: &openraft::RaftMetrics<u64, MemberNode>, me: u64, election_ms: u64) -> bool {
    match m.current_leader {
        None => false,
        Some(l) if l == me => {
            m.membership_config.membership().voter_ids().count() <= 1
                || m.millis_since_quorum_ack
                    .is_some_and(|ms| ms <= election_ms)
        }
        Some(_) => true,
    }
}

/// How long a proposal may wait for its result (etcd: 5s plus two election timeouts).
/// openraft's (min, max) election timeouts for etcd's `--election-timeout` E.
///
/// A follower of a known leader stands after openraft's leader lease (the max) plus a
/// random timeout in [min, max): with (0.3 E, 0.75 E) that is [1.05 E, 1.5 E) after the
/// last word from the leader, as etcd's followers stand after a random [E, 2 E). With
/// (E, 2 E) it was [3 E, 4 E): a failover took three to four seconds, etcd's about one.
/// The min stays above the heartbeat (etcd requires E >= 5 heartbeats).
fn election_timeouts(election_ms: u64) -> (u64, u64) {
    let min = (election_ms * 3 / 10).max(1);
    (min, (election_ms * 3 / 4).max(min + 1))
}

pub(super) fn request_timeout(election_ms: u64) -> Duration {
    Duration::from_secs(5) + Duration::from_millis(2 * election_ms)
}

/// Settings the member needs after start (a subset of [`Config`]).
#[derive(Debug, Clone)]
pub struct MemberSettings {
    pub name: String,
    pub data_dir: PathBuf,
    pub client_urls: Vec<String>,
    pub peer_urls: Vec<String>,
    pub max_request_bytes: u32,
    pub max_txn_ops: u32,
    pub quota_backend_bytes: u64,
    /// Log entries raft keeps behind a snapshot (etcd's --snapshot-catchup-entries).
    pub snapshot_catchup_entries: u64,
    pub report_version: String,
    /// For the metadata HTTP paths the client port serves (api::metahttp).
    pub meta_root: String,
    pub meta_write_role: String,
    pub election_timeout_ms: u64,
    /// --bcrypt-cost, as given (server::auth::bcrypt_cost applies etcd's bounds).
    pub bcrypt_cost: u32,
    /// `--max-learners` and `--strict-reconfig-check`.
    pub reconfig: Limits,
}

pub struct Member {
    pub settings: MemberSettings,
    pub(super) raft: Raft,
    proposer: Proposer,
    reads: ReadBarrier,
    pub(super) link: LeaderLink,
    /// Every watcher of the member (etcd's watchable store).
    pub(super) watch: Arc<WatchableStore>,
    progress_notify_interval: Duration,
    ids: IdGenerator,
    pub(super) state: Arc<SharedState>,
    pub(super) backend: Arc<dyn Backend>,
    pub member_id: u64,
    pub cluster_id: u64,
    /// Set when the member stops: long-lived client streams (watch, lease keep-alive) end,
    /// so that the client server's graceful shutdown can finish.
    closing: tokio::sync::watch::Sender<bool>,
    /// Set once raft or the store failed for good (see [`Member::fatal`]).
    fatal: tokio::sync::watch::Sender<Option<String>>,
}

impl Member {
    /// Open (or create) the member's data dir, start raft, and wait until it has a leader.
    pub async fn start(cfg: &Config) -> Result<Arc<Member>> {
        let internal = |e: &dyn std::fmt::Display| Error::Internal(e.to_string());
        let members = cfg.initial_members().map_err(|e| internal(&e))?;
        let settings = MemberSettings {
            name: cfg.name.clone(),
            data_dir: PathBuf::from(cfg.data_dir()),
            client_urls: cfg.advertise_client_urls().map_err(|e| internal(&e))?,
            peer_urls: cfg.peer_urls().map_err(|e| internal(&e))?,
            max_request_bytes: cfg.max_request_bytes,
            max_txn_ops: cfg.max_txn_ops,
            quota_backend_bytes: cfg.quota_backend_bytes(),
            snapshot_catchup_entries: cfg.snapshot_catchup_entries(),
            report_version: cfg.report_version.clone(),
            meta_root: cfg.meta_root.clone(),
            meta_write_role: cfg.meta_write_role.clone(),
            election_timeout_ms: cfg.election_timeout,
            bcrypt_cost: cfg.bcrypt_cost,
            reconfig: Limits {
                max_learners: cfg.max_learners(),
                strict: cfg.strict_reconfig_check,
            },
        };
        let db_dir = settings.data_dir.join("member").join("db");
        std::fs::create_dir_all(&db_dir).map_err(|e| internal(&e))?;
        let backend: Arc<dyn Backend> = Arc::new(
            SledBackend::open_with(&db_dir, cfg.backend_cache_bytes, !cfg.unsafe_no_fsync())
                .map_err(|e| internal(&e))?,
        );

        let joining = cfg.initial_cluster_state == "existing";
        let (member_id, cluster_id) = match ids::load(&*backend)? {
            Some(ids) => ids,
            None if joining => {
                let (m, c) = join_existing(&members, &cfg.name, &settings.peer_urls).await?;
                ids::store(&*backend, m, c)?;
                (m, c)
            }
            None => {
                ids::load_or_create(&*backend, &members, &cfg.name, &cfg.initial_cluster_token)?
            }
        };
        // Bind the peer port first: a port in use fails the start at once.
        let (peer_listeners, peer_dial) = bind_peer_port(cfg).await?;
        let network = Network::new(member_id, cluster_id, peer_dial);
        let log_store = LogStore::new(backend.clone());
        if cfg.force_new_cluster {
            force_new_cluster(&log_store, &*backend, member_id)?;
        }
        let min_lease_ttl = Lessor::min_ttl_for(Duration::from_millis(cfg.election_timeout));
        let snap_dir = settings.data_dir.join("member").join("snap");
        let sm = StateMachine::open(backend.clone(), min_lease_ttl, snap_dir, cfg.snapshot_count)
            .map_err(|e| internal(&e))?;
        let state = sm.shared.clone();
        state
            .auth
            .read()
            .expect("auth lock")
            .tokens()
            .set_ttl(cfg.auth_token_ttl());
        if let Some(o) = cfg.jwt_options().map_err(|e| internal(&e))? {
            let read = |p: &Option<PathBuf>| -> Result<Option<Vec<u8>>> {
                p.as_ref()
                    .map(|p| std::fs::read(p).map_err(|e| internal(&format!("{p:?}: {e}"))))
                    .transpose()
            };
            let (public, private) = (read(&o.pub_key)?, read(&o.priv_key)?);
            let jwt = JwtTokens::new(&o.sign_method, public.as_deref(), private.as_deref(), o.ttl)
                .map_err(|e| internal(&e))?;
            state.auth.read().expect("auth lock").tokens().use_jwt(jwt);
        }
        let watch = WatchableStore::start(state.kv.clone());
        state.set_watchable_store(watch.clone());
        let raft_config = openraft::Config {
            cluster_name: cfg.initial_cluster_token.clone(),
            // etcd's --heartbeat-interval and --election-timeout (see `election_timeouts`).
            heartbeat_interval: cfg.heartbeat_interval,
            election_timeout_min: election_timeouts(cfg.election_timeout).0,
            election_timeout_max: election_timeouts(cfg.election_timeout).1,
            // Snapshots are asked for by `snapshot_loop`, counting applied requests as etcd's
            // --snapshot-count does, not log entries (group commit packs many per entry).
            snapshot_policy: openraft::SnapshotPolicy::Never,
            // Per chunk of a snapshot sent to a peer; a large snapshot is many chunks.
            install_snapshot_timeout: 10_000,
            snapshot_max_chunk_size: 1 << 20,
            // etcd's --snapshot-catchup-entries: log kept behind a snapshot for slow
            // followers; one further behind gets the snapshot (tests make it small)
            max_in_snapshot_log_to_keep: cfg.snapshot_catchup_entries(),
            max_payload_entries: 1024,
            ..Default::default()
        };
        let raft_config = Arc::new(raft_config.validate().map_err(|e| internal(&e))?);
        let raft = Raft::new(member_id, raft_config, network.clone(), log_store, sm)
            .await
            .map_err(|e| internal(&e))?;
        let fatal = tokio::sync::watch::Sender::new(None);
        let closing = tokio::sync::watch::Sender::new(false);
        tokio::spawn(serve_peers(
            peer_listeners,
            PeerService::new(
                raft.clone(),
                state.clone(),
                member_id,
                cluster_id,
                network.activity(),
            ),
            closing.subscribe(),
        ));
        tokio::spawn(watch_raft_fatal(
            raft.metrics(),
            closing.subscribe(),
            fatal.clone(),
        ));
        let on_compaction_error = {
            let fatal = fatal.clone();
            move |e: crate::mvcc::Error| {
                fatal.send_replace(Some(format!("compaction failed: {e}")));
            }
        };
        let pacing = compaction::Pacing {
            batch: cfg.compaction_batch_limit(),
            pause: cfg.compaction_sleep_interval(),
        };
        compaction::start(&state.kv, pacing, on_compaction_error);
        tokio::spawn(watch_removed(
            raft.metrics(),
            network.removed(),
            member_id,
            fatal.clone(),
        ));
        // A member joining an existing cluster gets its membership from the leader.
        if !joining && !raft.is_initialized().await.map_err(|e| internal(&e))? {
            // A new cluster: every member starts raft with the whole initial cluster, as
            // etcd's members all start from the same --initial-cluster. A member that has
            // already heard from a peer that initialized first is initialized by it.
            // A restored data dir starts with the members of its restore.
            let nodes = match ids::load_initial_nodes(&*backend)? {
                Some(nodes) => nodes,
                None => ids::initial_nodes(&members, &cfg.initial_cluster_token),
            };
            match raft.initialize(nodes).await {
                Ok(()) => {}
                Err(openraft::error::RaftError::APIError(
                    openraft::error::InitializeError::NotAllowed(_),
                )) => {}
                Err(e) => return Err(internal(&e)),
            }
        }
        tokio::spawn(snapshot_loop(
            raft.clone(),
            Arc::downgrade(&state),
            closing.subscribe(),
        ));
        let timeout = request_timeout(settings.election_timeout_ms);
        let health = ClusterHealth {
            activity: network.activity(),
            state: state.clone(),
        };
        tokio::spawn(promote_loop(
            raft.clone(),
            health.clone(),
            closing.subscribe(),
        ));
        let link = LeaderLink::new(raft.clone(), network, member_id, health);
        let proposer = Proposer::start(link.clone(), timeout);
        let reads = ReadBarrier::start(link.clone(), timeout);
        let member = Arc::new(Member {
            settings,
            raft,
            proposer,
            reads,
            link,
            watch,
            progress_notify_interval: cfg.progress_notify_interval(),
            ids: IdGenerator::new(member_id),
            state,
            backend,
            member_id,
            cluster_id,
            closing,
            fatal,
        });
        // A fatal error ends every client stream; reads are refused from then on.
        let mut fatal_rx = member.fatal.subscribe();
        let closing = member.closing.clone();
        tokio::spawn(async move {
            if fatal_rx.wait_for(Option::is_some).await.is_ok() {
                closing.send_replace(true);
            }
        });
        // Compare with the peers before serving anything (etcd: before s.Start()).
        if cfg.initial_corrupt_check() {
            member.initial_corrupt_check().await?;
        }
        member.wait_for_leader(Duration::from_secs(60)).await?;
        // Serve nothing older than the log: apply every entry committed before the restart
        // (etcd replays its WAL before it serves, too): the read barrier, through the
        // leader's read index, covers the whole committed log on any member.
        tokio::time::timeout(Duration::from_secs(60), member.reads.wait())
            .await
            .map_err(|_| Error::Timeout)??;
        member.publish().await?;
        if let Some(every) = cfg.corrupt_check_time() {
            member.start_corrupt_monitor(every);
        }
        Ok(member)
    }

    /// Announce this member's name and client URLs to the cluster through the log (etcd's
    /// publish), so that every member lists them.
    async fn publish(&self) -> Result<()> {
        let req = MemberAttrSetRequest {
            member_id: self.member_id,
            member_attributes: Some(MemberAttributes {
                name: self.settings.name.clone(),
                client_urls: self.settings.client_urls.clone(),
            }),
        };
        let size = req.encoded_len();
        self.propose(Request::MemberAttrSet(req), size).await?;
        Ok(())
    }

    /// Resolves with the error once raft or the store has failed for good: the member
    /// serves nothing from then on, and the process should log it and exit (etcd: lg.Fatal).
    pub fn fatal(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let mut rx = self.fatal.subscribe();
        async move {
            let found = rx
                .wait_for(Option::is_some)
                .await
                .map(|v| v.clone().unwrap_or_default());
            match found {
                Ok(e) => e,
                // The member is gone without a fatal error: never resolve.
                Err(_) => std::future::pending().await,
            }
        }
    }

    fn check_not_fatal(&self) -> Result<()> {
        if self.fatal.borrow().is_some() {
            return Err(Error::Stopped);
        }
        Ok(())
    }

    async fn wait_for_leader(&self, timeout: Duration) -> Result<()> {
        let mut metrics = self.raft.metrics();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if metrics.borrow().current_leader.is_some() {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, metrics.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(Error::Stopped),
                Err(_) => return Err(Error::NoLeader),
            }
        }
    }

    /// Resolves once the member has begun to stop.
    pub fn closing(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.closing.subscribe();
        async move {
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }

    /// End every long-lived client stream (the first step of stopping).
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    pub async fn shutdown(&self) {
        self.close_streams();
        let _ = self.raft.shutdown().await;
        let _ = self.backend.flush();
    }

    fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// A new watch stream of this member's watchable store; its notices arrive on the
    /// receiver, at most `capacity` queued (the store falls back to catching up from the
    /// store for a stream that lags).
    pub fn new_watch_stream(
        &self,
        capacity: usize,
    ) -> (WatchStream, tokio::sync::mpsc::Receiver<Notice>) {
        self.watch.new_stream(capacity)
    }

    /// etcd's response header: ids, the current term and the given revision.
    pub fn header(&self, revision: i64) -> ResponseHeader {
        let term = self.raft.metrics().borrow().current_term;
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: term,
        }
    }

    pub fn current_revision(&self) -> i64 {
        self.state.kv.read().expect("kv lock").current_rev()
    }

    /// The revision of the last compaction; -1 before any, as etcd's `compactMainRev`.
    pub fn compact_revision(&self) -> i64 {
        match self.state.kv.read().expect("kv lock").compact_rev() {
            0 => -1,
            rev => rev,
        }
    }

    pub fn progress_notify_interval(&self) -> Duration {
        self.progress_notify_interval
    }

    /// The version of `key` visible at `rev`, if any and not compacted (for watch prev_kv).
    pub fn get_at(&self, key: &bytes::Bytes, rev: i64) -> Option<KeyValue> {
        let kv = self.state.kv.read().expect("kv lock");
        let opts = RangeOptions {
            rev,
            ..Default::default()
        };
        kv.range(&KeyRange::Single(key.clone()), opts)
            .ok()?
            .kvs
            .into_iter()
            .next()
    }

    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// Propose a request of the member's own (etcd's WithRoot), under a new request id,
    /// and wait for the result of its apply.
    pub(super) async fn propose(&self, req: Request, size: usize) -> Result<Applied> {
        self.propose_as(&AuthInfo::member(), req, size).await
    }

    /// Propose a request for `ai` (its user and auth revision go in the header, and apply
    /// checks the request for them) and wait for the result of its apply.
    pub(super) async fn propose_as(
        &self,
        ai: &AuthInfo,
        req: Request,
        size: usize,
    ) -> Result<Applied> {
        let mut cmd = Command::new(self.ids.next(), req);
        if let Some(h) = cmd.header.as_mut() {
            h.username.clone_from(&ai.username);
            h.auth_revision = ai.revision;
        }
        // etcd compares the encoded internal request (the request plus a small header).
        if size + 16 > self.settings.max_request_bytes as usize {
            return Err(Error::RequestTooLarge);
        }
        let timeout = request_timeout(self.settings.election_timeout_ms);
        let res = tokio::time::timeout(timeout, self.proposer.propose(cmd, size))
            .await
            .map_err(|_| Error::Timeout)?;
        match res? {
            Applied::Refused(r) => Err(r.into()),
            other => Ok(other),
        }
    }

    /// Wait until this member's store reflects every write committed before the call
    /// (etcd's linearizableReadNotify).
    pub async fn read_barrier(&self) -> Result<()> {
        let timeout = request_timeout(self.settings.election_timeout_ms);
        tokio::time::timeout(timeout, self.reads.wait())
            .await
            .map_err(|_| Error::Timeout)?
    }

    pub async fn range(&self, ai: &AuthInfo, req: RangeRequest) -> Result<RangeResponse> {
        self.check_not_fatal()?;
        if !req.serializable {
            self.read_barrier().await?;
        }
        self.check_range(ai, &req.key, &req.range_end)?;
        let resp = self.range_unchecked(req)?;
        self.check_auth_revision_after_read(ai)?;
        Ok(resp)
    }

    fn range_unchecked(&self, req: RangeRequest) -> Result<RangeResponse> {
        // Plan under the lock (revision checks, count, which versions), read the values
        // after it; a version removed in between (a later compaction) means plan again.
        let plan = apply::kv::range_plan(&req);
        for _ in 0..3 {
            let planned = {
                let kv = self.state.kv.read().expect("kv lock");
                kv.plan_range(&plan.range, plan.opts)
            };
            let planned = match planned {
                Ok(p) => p,
                Err(e) => return Err(apply::refuse(e)?.into()),
            };
            let fetched = planned
                .fetch(&**self.backend())
                .map_err(|e| Error::from(apply::Error::Mvcc(e)))?;
            if let Some(rr) = fetched {
                // (the fallback below counts in apply::kv::range)
                crate::metrics::MVCC_RANGE.inc();
                return Ok(plan.response(rr));
            }
        }
        let kv = self.state.kv.read().expect("kv lock");
        Ok(apply::kv::range(&*kv, &req)??)
    }

    pub async fn put(&self, ai: &AuthInfo, req: PutRequest) -> Result<PutResponse> {
        self.check_quota(quota::cost_put(&req)).await?;
        let size = req.encoded_len();
        match self.propose_as(ai, Request::Put(req), size).await? {
            Applied::Put(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn delete_range(
        &self,
        ai: &AuthInfo,
        req: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse> {
        let size = req.encoded_len();
        match self.propose_as(ai, Request::DeleteRange(req), size).await? {
            Applied::DeleteRange(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn txn(&self, ai: &AuthInfo, req: TxnRequest) -> Result<TxnResponse> {
        self.check_quota(quota::cost_txn(&req)).await?;
        if is_txn_read_only(&req) {
            // Like etcd, a txn of ranges only is a read: barrier, then run it locally at one
            // pinned revision, the lock held only to plan each read (applies and other
            // reads go on while values are read). A view overtaken by a compaction starts
            // over; after a few tries, the txn runs under the shared lock.
            self.check_not_fatal()?;
            self.read_barrier().await?;
            apply::auth::check_txn(&self.state.auth.read().expect("auth lock"), ai, &req)?;
            let resp = self.txn_read_only(req)?;
            self.check_auth_revision_after_read(ai)?;
            return Ok(resp);
        }
        let size = req.encoded_len();
        match self.propose_as(ai, Request::Txn(req), size).await? {
            Applied::Txn(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    fn txn_read_only(&self, req: TxnRequest) -> Result<TxnResponse> {
        {
            for _ in 0..3 {
                let view = PinnedView::pin(&self.state.kv, &**self.backend());
                let answer = apply::txn::txn_read_only(&view, &req);
                if !view.is_stale() {
                    return Ok(answer??);
                }
            }
            let kv = self.state.kv.read().expect("kv lock");
            Ok(apply::txn::txn_read_only(&*kv, &req)??)
        }
    }

    pub async fn compact(
        &self,
        ai: &AuthInfo,
        req: CompactionRequest,
    ) -> Result<CompactionResponse> {
        let (rev, physical) = (req.revision, req.physical);
        let mut finished = self
            .state
            .kv
            .read()
            .expect("kv lock")
            .finished_compactions();
        let size = req.encoded_len();
        let resp = match self.propose_as(ai, Request::Compaction(req), size).await? {
            Applied::Compaction(r) => r,
            other => return Err(unexpected(other)),
        };
        if physical {
            // etcd: with `physical`, answer once the compacted versions are removed.
            let mut fatal = self.fatal.subscribe();
            tokio::select! {
                r = finished.wait_for(|f| *f >= rev) => { r.map_err(|_| Error::Stopped)?; }
                _ = fatal.wait_for(Option::is_some) => return Err(Error::Stopped),
            }
        }
        Ok(resp)
    }

    /// An alarm request, applied through the log on every member as etcd does (GET too, so
    /// the answer is the cluster's committed alarms).
    pub async fn alarm(&self, req: AlarmRequest) -> Result<AlarmResponse> {
        let size = req.encoded_len();
        match self.propose(Request::Alarm(req), size).await? {
            Applied::Alarm(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Grant a lease; the server picks a free id when the client gives none (etcd).
    pub async fn lease_grant(&self, mut req: LeaseGrantRequest) -> Result<LeaseGrantResponse> {
        if req.id == 0 {
            req.id = loop {
                let id = self.ids.next_lease_id();
                if !self.state.leases.lock().expect("leases lock").contains(id) {
                    break id;
                }
            };
        }
        self.check_quota(quota::cost_lease_grant(&req)).await?;
        let size = req.encoded_len();
        match self.propose(Request::LeaseGrant(req), size).await? {
            Applied::LeaseGrant(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Revoke a lease and delete its keys in one revision.
    pub async fn lease_revoke(&self, ai: &AuthInfo, id: i64) -> Result<LeaseRevokeResponse> {
        let req = LeaseRevokeRequest { id };
        let size = req.encoded_len();
        match self.propose_as(ai, Request::LeaseRevoke(req), size).await? {
            Applied::LeaseRevoke(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Keep-alive: the lease's full TTL from now, answered by the leader (a follower
    /// asks the leader over the peer link, as etcd's forwards keep-alives).
    pub async fn lease_renew(&self, id: i64) -> Result<i64> {
        let deadline =
            tokio::time::Instant::now() + request_timeout(self.settings.election_timeout_ms);
        let renew_here = || self.state.leases.lock().expect("leases lock").renew(id);
        self.link
            .lease_renew(id, false, deadline, renew_here)
            .await?
            .ok_or(Error::LeaseNotFound)
    }

    /// (remaining seconds, granted TTL, attached keys) of a lease.
    /// With `keys`, the caller must be able to read every attached key (etcd 3.5's
    /// checkLeaseTimeToLive; 3.4.23 shows them to anyone).
    pub async fn lease_time_to_live(
        &self,
        ai: Option<&AuthInfo>,
        id: i64,
        keys: bool,
    ) -> Result<(i64, i64, Vec<bytes::Bytes>)> {
        self.read_barrier().await?;
        let (ttl, attached) = {
            let leases = self.state.leases.lock().expect("leases lock");
            let lease = leases.get(id).ok_or(Error::LeaseNotFound)?;
            if keys {
                let auth = self.state.auth.read().expect("auth lock");
                if auth.is_enabled() {
                    let ai = ai.ok_or(crate::auth::Error::UserEmpty)?;
                    for k in &lease.keys {
                        auth.is_range_permitted(ai, k, &[])?;
                    }
                }
            }
            let attached = if keys {
                lease.keys.iter().cloned().collect()
            } else {
                Vec::new()
            };
            (lease.ttl, attached)
        };
        // Expiry runs on the leader: the remaining TTL is the leader's (etcd: a follower
        // asks the leader's lessor over the peer link).
        let deadline =
            tokio::time::Instant::now() + request_timeout(self.settings.election_timeout_ms);
        let here = || self.state.leases.lock().expect("leases lock").remaining(id);
        let remaining = self
            .link
            .lease_renew(id, true, deadline, here)
            .await?
            .ok_or(Error::LeaseNotFound)?;
        Ok((remaining, ttl, attached))
    }

    pub async fn lease_leases(&self) -> Result<Vec<i64>> {
        self.read_barrier().await?;
        Ok(self.state.leases.lock().expect("leases lock").ids())
    }
}

pub(super) fn unexpected(a: Applied) -> Error {
    Error::Internal(format!("unexpected apply result {a:?}"))
}

/// Whether every op, nested ones included, is a range (etcd: isTxnReadonly).
pub fn is_txn_read_only(r: &TxnRequest) -> bool {
    r.success
        .iter()
        .chain(r.failure.iter())
        .all(|op| match &op.request {
            Some(request_op::Request::RequestRange(_)) => true,
            Some(request_op::Request::RequestTxn(t)) => is_txn_read_only(t),
            _ => false,
        })
}

#[path = "member_cluster.rs"]
mod cluster;
pub use cluster::RaftStatus;

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(
        metrics: openraft::RaftMetrics<u64, MemberNode>,
        closing: bool,
    ) -> tokio::sync::watch::Receiver<Option<String>> {
        let (tx, rx) = tokio::sync::watch::channel(metrics);
        let (_closing_tx, closing_rx) = tokio::sync::watch::channel(closing);
        let fatal = tokio::sync::watch::Sender::new(None);
        let seen = fatal.subscribe();
        let task = tokio::spawn(watch_raft_fatal(rx, closing_rx, fatal));
        drop(tx);
        drop(task);
        seen
    }

    #[tokio::test]
    async fn a_fatal_raft_state_is_recorded_and_a_requested_stop_is_not() {
        let mut m = openraft::RaftMetrics::new_initial(1);
        m.running_state = Err(openraft::error::Fatal::Panicked);
        let mut seen = failed(m, false);
        let e = seen.wait_for(Option::is_some).await.unwrap().clone();
        assert_eq!(e.as_deref(), Some("raft: panicked"));

        let mut m = openraft::RaftMetrics::new_initial(1);
        m.running_state = Err(openraft::error::Fatal::Stopped);
        let mut seen = failed(m, true);
        // The watcher ends without recording anything: the sender is dropped.
        assert!(seen.wait_for(Option::is_some).await.is_err());

        // Raft gone while nobody asked it to stop is fatal too.
        let mut seen = failed(openraft::RaftMetrics::new_initial(1), false);
        let e = seen.wait_for(Option::is_some).await.unwrap().clone();
        assert_eq!(e.as_deref(), Some("raft: stopped"));
    }

    #[test]
    fn a_follower_stands_within_etcds_election_window() {
        for (e, heartbeat) in [(1000, 100), (50, 10), (5000, 1000), (10, 1)] {
            let (min, max) = election_timeouts(e);
            assert!(heartbeat < min && min < max, "{e}: {min} {max}");
            // openraft: leader lease (max) + a random timeout in [min, max).
            let (first, last) = (max + min, 2 * max);
            assert!(
                first >= e && last <= 2 * e,
                "{e}: stands in [{first}, {last})"
            );
        }
    }
}
