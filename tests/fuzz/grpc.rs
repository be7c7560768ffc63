//! Arbitrary bytes into every gRPC method of the client port (KV, Watch, Lease, Cluster,
//! Maintenance, Auth, Lock, Election) and of the peer port, sent raw (no client-side
//! encoding) one case at a time. Each answer must be a valid response or a status with a
//! message, within a deadline (never a hang); a refused request must leave the state its
//! method could change as it was; the server must not panic.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions};
use http::uri::PathAndQuery;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::gen;
use super::raw::RawCodec as Raw;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    Unary,
    /// One request, a stream of responses.
    ServerStream,
    /// Streams both ways.
    Bidi,
    /// A stream of requests, one response.
    ClientStream,
}

/// What a method may change, so what a refusal must have left alone.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Touches {
    Nothing,
    /// Keys: the revision.
    Kv,
    /// Leases and the keys they hold.
    Leases,
    /// Users and roles.
    Auth,
    Members,
    Alarms,
    /// Nothing checked (defragment, leadership, downgrade).
    Unchecked,
    /// The peer port: any of the above.
    Peer,
}

use Shape::*;
use Touches::*;

const METHODS: &[(&str, Shape, Touches)] = &[
    ("/etcdserverpb.KV/Range", Unary, Nothing),
    ("/etcdserverpb.KV/Put", Unary, Kv),
    ("/etcdserverpb.KV/DeleteRange", Unary, Kv),
    ("/etcdserverpb.KV/Txn", Unary, Kv),
    ("/etcdserverpb.KV/Compact", Unary, Kv),
    ("/etcdserverpb.Watch/Watch", Bidi, Nothing),
    ("/etcdserverpb.Lease/LeaseGrant", Unary, Leases),
    ("/etcdserverpb.Lease/LeaseRevoke", Unary, Leases),
    ("/etcdserverpb.Lease/LeaseKeepAlive", Bidi, Leases),
    ("/etcdserverpb.Lease/LeaseTimeToLive", Unary, Nothing),
    ("/etcdserverpb.Lease/LeaseLeases", Unary, Nothing),
    ("/etcdserverpb.Cluster/MemberAdd", Unary, Members),
    ("/etcdserverpb.Cluster/MemberRemove", Unary, Members),
    ("/etcdserverpb.Cluster/MemberUpdate", Unary, Members),
    ("/etcdserverpb.Cluster/MemberList", Unary, Nothing),
    ("/etcdserverpb.Cluster/MemberPromote", Unary, Members),
    ("/etcdserverpb.Maintenance/Alarm", Unary, Alarms),
    ("/etcdserverpb.Maintenance/Status", Unary, Nothing),
    ("/etcdserverpb.Maintenance/Defragment", Unary, Unchecked),
    ("/etcdserverpb.Maintenance/Hash", Unary, Nothing),
    ("/etcdserverpb.Maintenance/HashKV", Unary, Nothing),
    ("/etcdserverpb.Maintenance/Snapshot", ServerStream, Nothing),
    ("/etcdserverpb.Maintenance/MoveLeader", Unary, Unchecked),
    ("/etcdserverpb.Maintenance/Downgrade", Unary, Unchecked),
    ("/etcdserverpb.Auth/AuthEnable", Unary, Auth),
    ("/etcdserverpb.Auth/AuthDisable", Unary, Auth),
    ("/etcdserverpb.Auth/AuthStatus", Unary, Nothing),
    ("/etcdserverpb.Auth/Authenticate", Unary, Nothing),
    ("/etcdserverpb.Auth/UserAdd", Unary, Auth),
    ("/etcdserverpb.Auth/UserGet", Unary, Nothing),
    ("/etcdserverpb.Auth/UserList", Unary, Nothing),
    ("/etcdserverpb.Auth/UserDelete", Unary, Auth),
    ("/etcdserverpb.Auth/UserChangePassword", Unary, Auth),
    ("/etcdserverpb.Auth/UserGrantRole", Unary, Auth),
    ("/etcdserverpb.Auth/UserRevokeRole", Unary, Auth),
    ("/etcdserverpb.Auth/RoleAdd", Unary, Auth),
    ("/etcdserverpb.Auth/RoleGet", Unary, Nothing),
    ("/etcdserverpb.Auth/RoleList", Unary, Nothing),
    ("/etcdserverpb.Auth/RoleDelete", Unary, Auth),
    ("/etcdserverpb.Auth/RoleGrantPermission", Unary, Auth),
    ("/etcdserverpb.Auth/RoleRevokePermission", Unary, Auth),
    ("/v3lockpb.Lock/Lock", Unary, Kv),
    ("/v3lockpb.Lock/Unlock", Unary, Kv),
    ("/v3electionpb.Election/Campaign", Unary, Kv),
    ("/v3electionpb.Election/Proclaim", Unary, Kv),
    ("/v3electionpb.Election/Leader", Unary, Nothing),
    ("/v3electionpb.Election/Observe", ServerStream, Nothing),
    ("/v3electionpb.Election/Resign", Unary, Kv),
    // the peer port
    ("/metastorepb.Peer/MemberChange", Unary, Peer),
    ("/metastorepb.Peer/ClusterMembers", Unary, Peer),
    ("/metastorepb.Peer/AppendEntries", Unary, Peer),
    ("/metastorepb.Peer/Vote", Unary, Peer),
    ("/metastorepb.Peer/InstallSnapshot", ClientStream, Peer),
    ("/metastorepb.Peer/Forward", Unary, Peer),
    ("/metastorepb.Peer/ReadIndex", Unary, Peer),
    ("/metastorepb.Peer/LeaseRenew", Unary, Peer),
    ("/metastorepb.Peer/Elect", Unary, Peer),
    ("/metastorepb.Peer/HashKv", Unary, Peer),
];

/// How long a case may take before it counts as a hang. Lock and Campaign wait for their
/// turn by design, and a stream stays open: those are cut short instead.
const DEADLINE: Duration = Duration::from_secs(5);
const WAITS: Duration = Duration::from_millis(300);
const STREAM_WINDOW: Duration = Duration::from_millis(10);

/// What a method can change, as seen from outside.
#[derive(Debug, PartialEq, Eq, Clone)]
enum Digest {
    None,
    Rev(i64),
    Leases(i64, Vec<i64>),
    Auth(Vec<String>, Vec<String>),
    Members(Vec<(u64, Vec<String>, bool)>),
    Alarms(Vec<(u64, i32)>),
    All(i64, Vec<i64>, Vec<(u64, Vec<String>, bool)>),
}

type Probe<T> = Result<T, String>;

fn probe_err(what: &str) -> impl Fn(etcd_client::Error) -> String + '_ {
    move |e| format!("the state probe's {what} failed: {e}")
}

pub async fn revision(c: &mut Client) -> Probe<i64> {
    let opts = GetOptions::new()
        .with_all_keys()
        .with_count_only()
        .with_serializable();
    let r = c.get("", Some(opts)).await.map_err(probe_err("range"))?;
    Ok(r.header().map_or(0, |h| h.revision()))
}

async fn leases(c: &mut Client) -> Probe<Vec<i64>> {
    let r = c.leases().await.map_err(probe_err("lease list"))?;
    let mut ids: Vec<i64> = r.leases().iter().map(|l| l.id()).collect();
    ids.sort_unstable();
    Ok(ids)
}

async fn members(c: &mut Client) -> Probe<Vec<(u64, Vec<String>, bool)>> {
    let r = c.member_list().await.map_err(probe_err("member list"))?;
    let mut m: Vec<_> = r
        .members()
        .iter()
        .map(|m| (m.id(), m.peer_urls().to_vec(), m.is_learner()))
        .collect();
    m.sort();
    Ok(m)
}

async fn digest(c: &mut Client, t: Touches) -> Probe<Digest> {
    Ok(match t {
        Nothing | Unchecked => Digest::None,
        Kv => Digest::Rev(revision(c).await?),
        Leases => Digest::Leases(revision(c).await?, leases(c).await?),
        Auth => {
            let users = c.user_list().await.map_err(probe_err("user list"))?;
            let roles = c.role_list().await.map_err(probe_err("role list"))?;
            Digest::Auth(users.users().to_vec(), roles.roles().to_vec())
        }
        Members => Digest::Members(members(c).await?),
        Alarms => {
            let r = c
                .alarm(
                    etcd_client::AlarmAction::Get,
                    etcd_client::AlarmType::None,
                    None,
                )
                .await
                .map_err(probe_err("alarm list"))?;
            let mut a: Vec<_> = r
                .alarms()
                .iter()
                .map(|a| (a.member_id(), a.alarm() as i32))
                .collect();
            a.sort();
            Digest::Alarms(a)
        }
        Peer => Digest::All(revision(c).await?, leases(c).await?, members(c).await?),
    })
}

/// A granted lease's least TTL: a lease expiring during the run would change the state on
/// its own, between a refusal's digests. A week, longer than any run (with an hour, a
/// 1,000,000-case run saw its first leases expire at case 757,495).
const LONG_TTL: i64 = 7 * 24 * 3600;

fn long_lived(msg: Vec<u8>) -> Vec<u8> {
    use prost::Message;
    match metastore::proto::etcdserverpb::LeaseGrantRequest::decode(msg.as_slice()) {
        Ok(mut g) => {
            g.ttl = g.ttl.max(LONG_TTL);
            g.encode_to_vec()
        }
        Err(_) => msg,
    }
}

fn shape_waits(path: &str) -> bool {
    matches!(
        path,
        "/v3lockpb.Lock/Lock" | "/v3electionpb.Election/Campaign"
    )
}

/// Read a response stream for [`STREAM_WINDOW`]: its end, its error, or cut short.
async fn drain(mut stream: tonic::Streaming<Vec<u8>>) -> Outcome {
    let until = Instant::now() + STREAM_WINDOW;
    loop {
        match tokio::time::timeout_at(until.into(), stream.message()).await {
            Err(_) => return Outcome::CutShort,
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) => return Outcome::Ok,
            Ok(Err(s)) => return Outcome::Refused(s.code(), s.message().to_string()),
        }
    }
}

/// Wait until the revision stays put for 20 ms (at most 2 s).
pub async fn settle(c: &mut Client) -> Probe<()> {
    let until = Instant::now() + Duration::from_secs(2);
    let mut last = revision(c).await?;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = revision(c).await?;
        if now == last {
            return Ok(());
        }
        last = now;
    }
    Ok(())
}

/// A lock, campaign, proclaim or resign without a lease gets `lease` (granted for a week):
/// for lease 0 etcd opens a session, granting a lease of 60 s (kept even when the call is
/// then refused, as on etcd), and its expiry would change the state on its own.
fn with_lease(name: &str, msg: Vec<u8>, lease: i64) -> Vec<u8> {
    use metastore::proto::v3electionpb::{CampaignRequest, ProclaimRequest, ResignRequest};
    use metastore::proto::v3lockpb::LockRequest;
    use prost::Message;
    match name {
        "/v3electionpb.Election/Proclaim" => match ProclaimRequest::decode(msg.as_slice()) {
            Ok(mut r) if r.leader.as_ref().is_some_and(|l| l.lease == 0) => {
                r.leader.as_mut().expect("a leader").lease = lease;
                r.encode_to_vec()
            }
            _ => msg,
        },
        "/v3electionpb.Election/Resign" => match ResignRequest::decode(msg.as_slice()) {
            Ok(mut r) if r.leader.as_ref().is_some_and(|l| l.lease == 0) => {
                r.leader.as_mut().expect("a leader").lease = lease;
                r.encode_to_vec()
            }
            _ => msg,
        },
        "/v3lockpb.Lock/Lock" => match LockRequest::decode(msg.as_slice()) {
            Ok(mut r) if r.lease == 0 => {
                r.lease = lease;
                r.encode_to_vec()
            }
            _ => msg,
        },
        "/v3electionpb.Election/Campaign" => match CampaignRequest::decode(msg.as_slice()) {
            Ok(mut r) if r.lease == 0 => {
                r.lease = lease;
                r.encode_to_vec()
            }
            _ => msg,
        },
        _ => msg,
    }
}

/// The outcome of one case.
enum Outcome {
    Ok,
    Refused(Code, String),
    /// Cut short on purpose (a waiting method, a stream): its effect is unknown.
    CutShort,
    /// No answer within [`DEADLINE`].
    Hung,
}

async fn one(
    grpc: &mut tonic::client::Grpc<Channel>,
    method: usize,
    session: i64,
    rng: &mut StdRng,
) -> Outcome {
    let (name, shape, _) = METHODS[method];
    let path = name;
    let waits = matches!(
        path,
        "/v3lockpb.Lock/Lock" | "/v3electionpb.Election/Campaign"
    );
    let path = PathAndQuery::from_static(path);
    if grpc.ready().await.is_err() {
        return Outcome::Hung;
    }
    // a defragment rewrites the whole database and blocks every other call meanwhile, as
    // etcd's does: it gets longer
    let limit = if waits {
        WAITS
    } else if name == "/etcdserverpb.Maintenance/Defragment" {
        DEADLINE * 12
    } else {
        DEADLINE
    };
    let status = |r: Result<(), Status>| match r {
        Ok(()) => Outcome::Ok,
        Err(s) => Outcome::Refused(s.code(), s.message().to_string()),
    };
    match shape {
        Unary => {
            let mut msg = gen::input(rng);
            if name == "/etcdserverpb.Lease/LeaseGrant" {
                msg = long_lived(msg);
            }
            msg = with_lease(name, msg, session);
            match tokio::time::timeout(limit, grpc.unary(tonic::Request::new(msg), path, Raw)).await
            {
                Ok(r) => status(r.map(|_| ())),
                Err(_) if waits => Outcome::CutShort,
                Err(_) => Outcome::Hung,
            }
        }
        ServerStream => {
            let msg = gen::input(rng);
            let call = grpc.server_streaming(tonic::Request::new(msg), path, Raw);
            match tokio::time::timeout(limit, call).await {
                Err(_) => Outcome::Hung,
                Ok(Err(s)) => Outcome::Refused(s.code(), s.message().to_string()),
                Ok(Ok(resp)) => drain(resp.into_inner()).await,
            }
        }
        Bidi | ClientStream => {
            let msgs: Vec<Vec<u8>> = (0..rng.gen_range(0..4)).map(|_| gen::input(rng)).collect();
            let call = grpc.streaming(tonic::Request::new(futures::stream::iter(msgs)), path, Raw);
            match tokio::time::timeout(limit, call).await {
                Err(_) => Outcome::Hung,
                Ok(Err(s)) => Outcome::Refused(s.code(), s.message().to_string()),
                Ok(Ok(resp)) => drain(resp.into_inner()).await,
            }
        }
    }
}

/// Run `cases` cases against the member at `client_url` (and its peer port at
/// `peer_url`); returns the count of outcomes per code, or the first failure.
pub async fn run(
    client_url: &str,
    peer_url: &str,
    seed: u64,
    cases: u64,
) -> Result<BTreeMap<String, u64>, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let client_ch = Channel::from_shared(client_url.to_string())
        .unwrap()
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let peer_ch = Channel::from_shared(peer_url.to_string())
        .unwrap()
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let mut to_client = tonic::client::Grpc::new(client_ch)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let mut to_peer = tonic::client::Grpc::new(peer_ch)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let mut probe = Client::connect([client_url], None)
        .await
        .map_err(|e| e.to_string())?;
    let session = probe
        .lease_grant(LONG_TTL, None)
        .await
        .map_err(|e| e.to_string())?
        .id();
    let mut tally: BTreeMap<String, u64> = BTreeMap::new();
    let mut recent = super::Recent::default();
    let mut cut_short = false;
    for case in 0..cases {
        let method = rng.gen_range(0..METHODS.len());
        let (path, _, touches) = METHODS[method];
        if cut_short {
            // a lock or campaign given up on cleans up after the client left (etcd deletes
            // the waiter's key): let that land first
            settle(&mut probe).await?;
        }
        let before = digest(&mut probe, touches)
            .await
            .map_err(|e| format!("case {case} (seed {seed}), before {path}: {e}"))?;
        let grpc = if touches == Peer {
            &mut to_peer
        } else {
            &mut to_client
        };
        let outcome = one(grpc, method, session, &mut rng).await;
        cut_short = matches!(outcome, Outcome::CutShort) && shape_waits(path);
        let key = match &outcome {
            Outcome::Ok => "ok".to_string(),
            Outcome::CutShort => "cut short (stream or waiting)".to_string(),
            Outcome::Hung => {
                return Err(format!(
                    "case {case} (seed {seed}): {path} did not answer in {DEADLINE:?}"
                ))
            }
            Outcome::Refused(code, msg) => {
                if msg.is_empty() {
                    return Err(format!(
                        "case {case} (seed {seed}): {path} refused with {code:?} and no message"
                    ));
                }
                if matches!(code, Code::Unimplemented) {
                    return Err(format!(
                        "case {case} (seed {seed}): {path} is not implemented: {msg}"
                    ));
                }
                if std::env::var("FUZZ_TRACE").is_ok() {
                    eprintln!("TRACE {path} {code:?} {msg}");
                }
                format!("{code:?}")
            }
        };
        if let Outcome::Refused(code, msg) = &outcome {
            let after = digest(&mut probe, touches).await.map_err(|e| {
                format!(
                    "case {case} (seed {seed}), after {path}: {e}; the cases before: {recent:?}"
                )
            })?;
            if after != before {
                return Err(format!(
                    "case {case} (seed {seed}): {path} refused ({code:?}: {msg}) but changed {before:?} to {after:?}; the cases before: {recent:?}"
                ));
            }
        }
        recent.push(format!("{path}: {key}"));
        *tally.entry(key).or_default() += 1;
    }
    Ok(tally)
}
