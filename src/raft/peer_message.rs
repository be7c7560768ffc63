//! openraft's RPC messages as the protobuf messages of proto/metastorepb/peer.proto, both
//! ways. Log entries travel in their stored encoding (`codec::encode_entry`), so the peer
//! link carries exactly what the log holds; nothing on the link is serde or bincode.
//!
//! To ensure correctness: a malformed message is an error (the receiver refuses it), never
//! a default value standing in for a missing vote or log id that raft relies on.

use openraft::error::{InstallSnapshotError, SnapshotMismatch};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{LeaderId, SnapshotSegmentId};

use super::codec;
use super::types::{NodeId, SnapshotMeta, TypeConfig, Vote};
use crate::proto::metastorepb as pb;

/// A peer message that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("malformed peer message: {0}")]
pub struct Malformed(pub String);

fn missing(what: &str) -> Malformed {
    Malformed(format!("{what} is missing"))
}

pub fn vote_to_pb(v: &Vote) -> pb::Vote {
    pb::Vote {
        term: v.leader_id.term,
        node_id: v.leader_id.node_id,
        committed: v.committed,
    }
}

pub fn vote_from_pb(v: Option<pb::Vote>) -> Result<Vote, Malformed> {
    let v = v.ok_or_else(|| missing("vote"))?;
    Ok(Vote {
        leader_id: LeaderId::new(v.term, v.node_id),
        committed: v.committed,
    })
}

fn log_id_opt(l: &Option<super::types::LogId>) -> Option<pb::LogId> {
    l.as_ref().map(codec::log_id_to_pb)
}

fn log_id_back(l: Option<pb::LogId>) -> Option<super::types::LogId> {
    l.as_ref().map(codec::log_id_from_pb)
}

/// `entries` are the request's leading entries, each as `codec::encode_entry` wrote it.
pub fn append_to_pb(
    header: pb::PeerHeader,
    r: &AppendEntriesRequest<TypeConfig>,
    entries: Vec<bytes::Bytes>,
) -> pb::AppendEntriesRequest {
    pb::AppendEntriesRequest {
        header: Some(header),
        vote: Some(vote_to_pb(&r.vote)),
        prev_log_id: log_id_opt(&r.prev_log_id),
        entries,
        leader_commit: log_id_opt(&r.leader_commit),
    }
}

pub fn append_from_pb(
    r: pb::AppendEntriesRequest,
) -> Result<AppendEntriesRequest<TypeConfig>, Malformed> {
    let entries = r
        .entries
        .iter()
        .map(|b| codec::decode_entry(b).map_err(|e| Malformed(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AppendEntriesRequest {
        vote: vote_from_pb(r.vote)?,
        prev_log_id: log_id_back(r.prev_log_id),
        entries,
        leader_commit: log_id_back(r.leader_commit),
    })
}

pub fn append_resp_to_pb(r: &AppendEntriesResponse<NodeId>) -> pb::AppendEntriesResponse {
    use pb::append_entries_response::Result as R;
    let result = match r {
        AppendEntriesResponse::Success => R::Success(pb::Empty {}),
        AppendEntriesResponse::PartialSuccess(l) => R::PartialSuccess(pb::OptionalLogId {
            log_id: log_id_opt(l),
        }),
        AppendEntriesResponse::Conflict => R::Conflict(pb::Empty {}),
        AppendEntriesResponse::HigherVote(v) => R::HigherVote(vote_to_pb(v)),
    };
    pb::AppendEntriesResponse {
        result: Some(result),
    }
}

pub fn append_resp_from_pb(
    r: pb::AppendEntriesResponse,
) -> Result<AppendEntriesResponse<NodeId>, Malformed> {
    use pb::append_entries_response::Result as R;
    Ok(match r.result.ok_or_else(|| missing("append result"))? {
        R::Success(_) => AppendEntriesResponse::Success,
        R::PartialSuccess(l) => AppendEntriesResponse::PartialSuccess(log_id_back(l.log_id)),
        R::Conflict(_) => AppendEntriesResponse::Conflict,
        R::HigherVote(v) => AppendEntriesResponse::HigherVote(vote_from_pb(Some(v))?),
    })
}

pub fn vote_req_to_pb(header: pb::PeerHeader, r: &VoteRequest<NodeId>) -> pb::VoteRequest {
    pb::VoteRequest {
        header: Some(header),
        vote: Some(vote_to_pb(&r.vote)),
        last_log_id: log_id_opt(&r.last_log_id),
    }
}

pub fn vote_req_from_pb(r: pb::VoteRequest) -> Result<VoteRequest<NodeId>, Malformed> {
    Ok(VoteRequest {
        vote: vote_from_pb(r.vote)?,
        last_log_id: log_id_back(r.last_log_id),
    })
}

pub fn vote_resp_to_pb(r: &VoteResponse<NodeId>) -> pb::VoteResponse {
    pb::VoteResponse {
        vote: Some(vote_to_pb(&r.vote)),
        vote_granted: r.vote_granted,
        last_log_id: log_id_opt(&r.last_log_id),
    }
}

pub fn vote_resp_from_pb(r: pb::VoteResponse) -> Result<VoteResponse<NodeId>, Malformed> {
    Ok(VoteResponse {
        vote: vote_from_pb(r.vote)?,
        vote_granted: r.vote_granted,
        last_log_id: log_id_back(r.last_log_id),
    })
}

fn meta_to_pb(m: &SnapshotMeta) -> pb::SnapshotMeta {
    pb::SnapshotMeta {
        last_log_id: log_id_opt(&m.last_log_id),
        last_membership: Some(codec::stored_membership_to_pb(&m.last_membership)),
        snapshot_id: m.snapshot_id.clone(),
    }
}

fn meta_from_pb(m: Option<pb::SnapshotMeta>) -> Result<SnapshotMeta, Malformed> {
    let m = m.ok_or_else(|| missing("snapshot meta"))?;
    Ok(SnapshotMeta {
        last_log_id: log_id_back(m.last_log_id),
        last_membership: codec::stored_membership_from_pb(
            m.last_membership
                .ok_or_else(|| missing("snapshot membership"))?,
        ),
        snapshot_id: m.snapshot_id,
    })
}

/// One chunk; the chunk's bytes are moved, not copied.
pub fn snapshot_to_pb(
    header: pb::PeerHeader,
    r: InstallSnapshotRequest<TypeConfig>,
) -> pb::InstallSnapshotRequest {
    pb::InstallSnapshotRequest {
        header: Some(header),
        vote: Some(vote_to_pb(&r.vote)),
        meta: Some(meta_to_pb(&r.meta)),
        offset: r.offset,
        data: r.data.into(),
        done: r.done,
    }
}

pub fn snapshot_from_pb(
    r: pb::InstallSnapshotRequest,
) -> Result<InstallSnapshotRequest<TypeConfig>, Malformed> {
    Ok(InstallSnapshotRequest {
        vote: vote_from_pb(r.vote)?,
        meta: meta_from_pb(r.meta)?,
        offset: r.offset,
        data: r.data.into(),
        done: r.done,
    })
}

pub fn snapshot_resp_to_pb(
    r: Result<InstallSnapshotResponse<NodeId>, SnapshotMismatch>,
) -> pb::InstallSnapshotResponse {
    use pb::install_snapshot_response::Result as R;
    let seg = |s: SnapshotSegmentId| pb::SnapshotSegment {
        snapshot_id: s.id,
        offset: s.offset,
    };
    let result = match r {
        Ok(r) => R::Vote(vote_to_pb(&r.vote)),
        Err(m) => R::Mismatch(pb::SnapshotMismatch {
            expect: Some(seg(m.expect)),
            got: Some(seg(m.got)),
        }),
    };
    pb::InstallSnapshotResponse {
        result: Some(result),
    }
}

pub fn snapshot_resp_from_pb(
    r: pb::InstallSnapshotResponse,
) -> Result<Result<InstallSnapshotResponse<NodeId>, InstallSnapshotError>, Malformed> {
    use pb::install_snapshot_response::Result as R;
    let seg = |s: Option<pb::SnapshotSegment>| -> Result<SnapshotSegmentId, Malformed> {
        let s = s.ok_or_else(|| missing("snapshot segment"))?;
        Ok(SnapshotSegmentId {
            id: s.snapshot_id,
            offset: s.offset,
        })
    };
    Ok(match r.result.ok_or_else(|| missing("snapshot result"))? {
        R::Vote(v) => Ok(InstallSnapshotResponse {
            vote: vote_from_pb(Some(v))?,
        }),
        R::Mismatch(m) => Err(InstallSnapshotError::SnapshotMismatch(SnapshotMismatch {
            expect: seg(m.expect)?,
            got: seg(m.got)?,
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{Command, Request};
    use crate::proto::etcdserverpb::PutRequest;
    use openraft::{CommittedLeaderId, EntryPayload, LogId};

    fn header() -> pb::PeerHeader {
        pb::PeerHeader {
            cluster_id: 7,
            from: 1,
            to: 2,
        }
    }

    #[test]
    fn append_entries_round_trip_through_protobuf() {
        let log_id = |i| LogId::new(CommittedLeaderId::new(3, 1), i);
        let cmd = Command::new(
            9,
            Request::Put(PutRequest {
                key: "k".into(),
                value: "v".into(),
                ..Default::default()
            }),
        );
        let req = AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(3, 1),
            prev_log_id: Some(log_id(4)),
            entries: vec![
                openraft::Entry {
                    log_id: log_id(5),
                    payload: EntryPayload::Blank,
                },
                openraft::Entry {
                    log_id: log_id(6),
                    payload: EntryPayload::Normal(cmd),
                },
            ],
            leader_commit: Some(log_id(5)),
        };
        let encoded = req
            .entries
            .iter()
            .map(|e| codec::encode_entry(e).into())
            .collect();
        let wire = prost::Message::encode_to_vec(&append_to_pb(header(), &req, encoded));
        let back: pb::AppendEntriesRequest = prost::Message::decode(&wire[..]).unwrap();
        assert_eq!(back.header, Some(header()));
        let back = append_from_pb(back).unwrap();
        assert_eq!(format!("{back:?}"), format!("{req:?}"));

        for resp in [
            AppendEntriesResponse::Success,
            AppendEntriesResponse::PartialSuccess(Some(log_id(5))),
            AppendEntriesResponse::PartialSuccess(None),
            AppendEntriesResponse::Conflict,
            AppendEntriesResponse::HigherVote(Vote::new(4, 2)),
        ] {
            assert_eq!(append_resp_from_pb(append_resp_to_pb(&resp)).unwrap(), resp);
        }
    }

    #[test]
    fn vote_and_snapshot_round_trip_and_a_missing_vote_is_refused() {
        let req = VoteRequest::new(Vote::new(2, 3), None);
        assert_eq!(
            vote_req_from_pb(vote_req_to_pb(header(), &req)).unwrap(),
            req
        );
        let resp = VoteResponse {
            vote: Vote::new(2, 3),
            vote_granted: true,
            last_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), 10)),
        };
        assert_eq!(vote_resp_from_pb(vote_resp_to_pb(&resp)).unwrap(), resp);
        assert!(vote_req_from_pb(pb::VoteRequest::default()).is_err());

        let chunk = InstallSnapshotRequest::<TypeConfig> {
            vote: Vote::new_committed(2, 3),
            meta: SnapshotMeta {
                last_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), 10)),
                last_membership: Default::default(),
                snapshot_id: "s-1".into(),
            },
            offset: 1 << 20,
            data: vec![1, 2, 3],
            done: true,
        };
        let back = snapshot_from_pb(snapshot_to_pb(header(), chunk.clone())).unwrap();
        assert_eq!(back, chunk);
        let mismatch = SnapshotMismatch {
            expect: SnapshotSegmentId {
                id: "a".into(),
                offset: 0,
            },
            got: SnapshotSegmentId {
                id: "b".into(),
                offset: 5,
            },
        };
        let out = snapshot_resp_from_pb(snapshot_resp_to_pb(Err(mismatch.clone()))).unwrap();
        assert_eq!(
            out.unwrap_err(),
            InstallSnapshotError::SnapshotMismatch(mismatch)
        );
    }
}
