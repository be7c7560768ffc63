//! How the raft layer's records are written: log entries, the vote, log ids and membership,
//! each as `apply::FORMAT_VERSION` followed by a message of proto/metastorepb/raft_storage.proto.
//! Nothing durable is serde or bincode.
//!
//! To ensure correctness: decoding refuses another format version and any malformed record
//! with a `StorageError`, which openraft treats as fatal, rather than guess.

use std::collections::{BTreeMap, BTreeSet};

use openraft::{CommittedLeaderId, EntryPayload, ErrorSubject, ErrorVerb, LeaderId};

use super::types::{Entry, LogId, MemberNode, Membership, StorageError, StoredMembership, Vote};
use crate::apply::{decode_versioned, decode_versioned_nested, encode_versioned};
use crate::membership::MemberRecord;
use crate::proto::metastorepb as pb;

fn corrupt(subject: ErrorSubject<u64>, e: impl std::fmt::Display) -> StorageError {
    StorageError::from_io_error(
        subject,
        ErrorVerb::Read,
        std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
    )
}

pub fn log_id_to_pb(l: &LogId) -> pb::LogId {
    pb::LogId {
        term: l.leader_id.term,
        node_id: l.leader_id.node_id,
        index: l.index,
    }
}

pub fn log_id_from_pb(l: &pb::LogId) -> LogId {
    LogId::new(CommittedLeaderId::new(l.term, l.node_id), l.index)
}

pub fn membership_to_pb(m: &Membership) -> pb::Membership {
    pb::Membership {
        configs: m
            .get_joint_config()
            .iter()
            .map(|c| pb::VoterSet {
                ids: c.iter().copied().collect(),
            })
            .collect(),
        nodes: m
            .nodes()
            .map(|(id, n)| {
                let node = pb::MemberNode {
                    name: n.name.clone(),
                    peer_urls: n.peer_urls.clone(),
                    voter_pending: n.voter_pending,
                };
                (*id, node)
            })
            .collect(),
    }
}

pub fn membership_from_pb(m: pb::Membership) -> Membership {
    let configs: Vec<BTreeSet<u64>> = m
        .configs
        .into_iter()
        .map(|c| c.ids.into_iter().collect())
        .collect();
    let nodes: BTreeMap<u64, MemberNode> = m
        .nodes
        .into_iter()
        .map(|(id, n)| {
            let node = MemberNode {
                name: n.name,
                peer_urls: n.peer_urls,
                voter_pending: n.voter_pending,
            };
            (id, node)
        })
        .collect();
    Membership::new(configs, nodes)
}

pub fn stored_membership_to_pb(m: &StoredMembership) -> pb::StoredMembership {
    pb::StoredMembership {
        log_id: m.log_id().as_ref().map(log_id_to_pb),
        membership: Some(membership_to_pb(m.membership())),
    }
}

pub fn stored_membership_from_pb(m: pb::StoredMembership) -> StoredMembership {
    StoredMembership::new(
        m.log_id.as_ref().map(log_id_from_pb),
        membership_from_pb(m.membership.unwrap_or_default()),
    )
}

/// The member records a membership means: its voters (a voter raft still holds as a
/// learner among them), and its learners flagged as such.
pub fn member_records(m: &Membership) -> Vec<MemberRecord> {
    let voters: BTreeSet<u64> = m.voter_ids().collect();
    m.nodes()
        .map(|(id, n)| MemberRecord {
            id: *id,
            name: n.name.clone(),
            peer_urls: n.peer_urls.clone(),
            client_urls: Vec::new(),
            is_learner: !voters.contains(id) && !n.voter_pending,
        })
        .collect()
}

/// A log entry as `pb::LogEntry`. The command is encoded in place, not cloned into a
/// `pb::LogEntry` first: this runs once per append on the write path.
pub fn encode_entry(e: &Entry) -> Vec<u8> {
    use prost::encoding::message;
    use prost::Message;
    let log_id = log_id_to_pb(&e.log_id);
    let mut buf = Vec::with_capacity(
        16 + match &e.payload {
            EntryPayload::Normal(cmd) => cmd.encoded_len(),
            _ => 0,
        },
    );
    buf.push(crate::apply::FORMAT_VERSION);
    message::encode(1, &log_id, &mut buf);
    match &e.payload {
        EntryPayload::Blank => message::encode(2, &pb::Blank {}, &mut buf),
        EntryPayload::Normal(cmd) => message::encode(3, cmd, &mut buf),
        EntryPayload::Membership(m) => message::encode(4, &membership_to_pb(m), &mut buf),
    }
    buf
}

pub fn decode_entry(bytes: &[u8]) -> Result<Entry, StorageError> {
    let e: pb::LogEntry =
        decode_versioned_nested(bytes).map_err(|e| corrupt(ErrorSubject::Logs, e))?;
    let log_id = e
        .log_id
        .as_ref()
        .map(log_id_from_pb)
        .ok_or_else(|| corrupt(ErrorSubject::Logs, "a log entry without a log id"))?;
    let payload = match e.payload {
        Some(pb::log_entry::Payload::Blank(_)) => EntryPayload::Blank,
        Some(pb::log_entry::Payload::Normal(cmd)) => EntryPayload::Normal(cmd),
        Some(pb::log_entry::Payload::Membership(m)) => {
            EntryPayload::Membership(membership_from_pb(m))
        }
        None => return Err(corrupt(ErrorSubject::Logs, "a log entry without a payload")),
    };
    Ok(Entry { log_id, payload })
}

pub fn encode_vote(v: &Vote) -> Vec<u8> {
    encode_versioned(&pb::Vote {
        term: v.leader_id.term,
        node_id: v.leader_id.node_id,
        committed: v.committed,
    })
}

pub fn decode_vote(bytes: &[u8]) -> Result<Vote, StorageError> {
    let v: pb::Vote = decode_versioned(bytes).map_err(|e| corrupt(ErrorSubject::Vote, e))?;
    Ok(Vote {
        leader_id: LeaderId::new(v.term, v.node_id),
        committed: v.committed,
    })
}

pub fn encode_log_id(l: &LogId) -> Vec<u8> {
    encode_versioned(&log_id_to_pb(l))
}

pub fn decode_log_id(bytes: &[u8]) -> Result<LogId, StorageError> {
    let l: pb::LogId = decode_versioned(bytes).map_err(|e| corrupt(ErrorSubject::Store, e))?;
    Ok(log_id_from_pb(&l))
}

pub fn encode_stored_membership(m: &StoredMembership) -> Vec<u8> {
    encode_versioned(&stored_membership_to_pb(m))
}

pub fn decode_stored_membership(bytes: &[u8]) -> Result<StoredMembership, StorageError> {
    let m: pb::StoredMembership =
        decode_versioned(bytes).map_err(|e| corrupt(ErrorSubject::StateMachine, e))?;
    Ok(stored_membership_from_pb(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{Command, Request};
    use crate::proto::authpb::{permission, Permission, UserAddOptions};
    use crate::proto::etcdserverpb::{
        alarm_request::AlarmAction, compare, request_op, AlarmRequest, AlarmType,
        CompactionRequest, Compare, DeleteRangeRequest, LeaseCheckpoint, LeaseCheckpointRequest,
        LeaseGrantRequest, LeaseRevokeRequest, PutRequest, RequestOp, TxnRequest,
    };
    use crate::proto::etcdserverpb::{
        AuthDisableRequest, AuthEnableRequest, AuthRoleAddRequest, AuthRoleDeleteRequest,
        AuthRoleGrantPermissionRequest, AuthRoleRevokePermissionRequest, AuthUserAddRequest,
        AuthUserChangePasswordRequest, AuthUserDeleteRequest, AuthUserGrantRoleRequest,
        AuthUserRevokeRoleRequest,
    };
    use crate::proto::metastorepb::{MemberAttrSetRequest, MemberAttributes};

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// One command of every kind the envelope has. The match is exhaustive, so a new kind
    /// does not compile until it is added here with its pinned bytes.
    fn one_of_each() -> Vec<(&'static str, Request)> {
        let all = vec![
            (
                "put",
                Request::Put(PutRequest {
                    key: "k".into(),
                    value: "v".into(),
                    lease: 7,
                    prev_kv: true,
                    ..Default::default()
                }),
            ),
            (
                "delete_range",
                Request::DeleteRange(DeleteRangeRequest {
                    key: "a".into(),
                    range_end: "b".into(),
                    prev_kv: true,
                }),
            ),
            (
                "txn",
                Request::Txn(TxnRequest {
                    compare: vec![Compare {
                        result: compare::CompareResult::Equal as i32,
                        target: compare::CompareTarget::Version as i32,
                        key: "k".into(),
                        range_end: Default::default(),
                        target_union: Some(compare::TargetUnion::Version(1)),
                    }],
                    success: vec![RequestOp {
                        request: Some(request_op::Request::RequestPut(PutRequest {
                            key: "k".into(),
                            value: "w".into(),
                            ..Default::default()
                        })),
                    }],
                    failure: Vec::new(),
                }),
            ),
            (
                "compaction",
                Request::Compaction(CompactionRequest {
                    revision: 9,
                    physical: true,
                }),
            ),
            (
                "lease_grant",
                Request::LeaseGrant(LeaseGrantRequest { ttl: 60, id: 42 }),
            ),
            (
                "lease_revoke",
                Request::LeaseRevoke(LeaseRevokeRequest { id: 42 }),
            ),
            (
                "alarm",
                Request::Alarm(AlarmRequest {
                    action: AlarmAction::Activate as i32,
                    member_id: 0x8e9e05c52164694d,
                    alarm: AlarmType::Nospace as i32,
                }),
            ),
            (
                "lease_checkpoint",
                Request::LeaseCheckpoint(LeaseCheckpointRequest {
                    checkpoints: vec![LeaseCheckpoint {
                        id: 42,
                        remaining_ttl: 30,
                    }],
                }),
            ),
            (
                "member_attr_set",
                Request::MemberAttrSet(MemberAttrSetRequest {
                    member_id: 0x8e9e05c52164694d,
                    member_attributes: Some(MemberAttributes {
                        name: "default".into(),
                        client_urls: vec!["http://127.0.0.1:2379".into()],
                    }),
                }),
            ),
            (
                "downgrade_info_set",
                Request::DowngradeInfoSet(crate::proto::metastorepb::DowngradeInfoSetRequest {
                    enabled: true,
                    ver: "3.4.0".into(),
                }),
            ),
            ("auth_enable", Request::AuthEnable(AuthEnableRequest {})),
            ("auth_disable", Request::AuthDisable(AuthDisableRequest {})),
            (
                "auth_user_add",
                Request::AuthUserAdd(AuthUserAddRequest {
                    name: "u".into(),
                    password: String::new(),
                    options: Some(UserAddOptions { no_password: false }),
                    hashed_password: "$2b$04$h".into(),
                }),
            ),
            (
                "auth_user_delete",
                Request::AuthUserDelete(AuthUserDeleteRequest { name: "u".into() }),
            ),
            (
                "auth_user_change_password",
                Request::AuthUserChangePassword(AuthUserChangePasswordRequest {
                    name: "u".into(),
                    password: String::new(),
                    hashed_password: "$2b$04$h".into(),
                }),
            ),
            (
                "auth_user_grant_role",
                Request::AuthUserGrantRole(AuthUserGrantRoleRequest {
                    user: "u".into(),
                    role: "r".into(),
                }),
            ),
            (
                "auth_user_revoke_role",
                Request::AuthUserRevokeRole(AuthUserRevokeRoleRequest {
                    name: "u".into(),
                    role: "r".into(),
                }),
            ),
            (
                "auth_role_add",
                Request::AuthRoleAdd(AuthRoleAddRequest { name: "r".into() }),
            ),
            (
                "auth_role_delete",
                Request::AuthRoleDelete(AuthRoleDeleteRequest { role: "r".into() }),
            ),
            (
                "auth_role_grant_permission",
                Request::AuthRoleGrantPermission(AuthRoleGrantPermissionRequest {
                    name: "r".into(),
                    perm: Some(Permission {
                        perm_type: permission::Type::Readwrite as i32,
                        key: "a".into(),
                        range_end: "b".into(),
                    }),
                }),
            ),
            (
                "auth_role_revoke_permission",
                Request::AuthRoleRevokePermission(AuthRoleRevokePermissionRequest {
                    role: "r".into(),
                    key: "a".into(),
                    range_end: "b".into(),
                }),
            ),
            (
                "batch",
                Request::Batch(crate::proto::metastorepb::InternalRaftBatch {
                    requests: vec![Command::new(
                        2,
                        Request::LeaseRevoke(LeaseRevokeRequest { id: 1 }),
                    )],
                }),
            ),
        ];
        for (_, r) in &all {
            match r {
                Request::Put(_)
                | Request::DeleteRange(_)
                | Request::Txn(_)
                | Request::Compaction(_)
                | Request::LeaseGrant(_)
                | Request::LeaseRevoke(_)
                | Request::Alarm(_)
                | Request::LeaseCheckpoint(_)
                | Request::MemberAttrSet(_)
                | Request::DowngradeInfoSet(_)
                | Request::AuthEnable(_)
                | Request::AuthDisable(_)
                | Request::AuthUserAdd(_)
                | Request::AuthUserDelete(_)
                | Request::AuthUserChangePassword(_)
                | Request::AuthUserGrantRole(_)
                | Request::AuthUserRevokeRole(_)
                | Request::AuthRoleAdd(_)
                | Request::AuthRoleDelete(_)
                | Request::AuthRoleGrantPermission(_)
                | Request::AuthRoleRevokePermission(_)
                | Request::Batch(_) => {}
            }
        }
        all
    }

    /// The bytes of one command of every kind, as the log stores them. A change here is a
    /// change of the durable format: bump FORMAT_VERSION and keep reading the old one.
    const GOLDEN: &[(&str, &str)] = &[
        ("put", "01220a0a016b12017618072001a206020801"),
        ("delete_range", "012a080a01611201621801a206020801"),
        ("txn", "0132110a051a016b2001120812060a016b120177a206020801"),
        ("compaction", "013a0408091001a206020801"),
        ("lease_grant", "014204083c102aa206020801"),
        ("lease_revoke", "014a02082aa206020801"),
        ("alarm", "01520f080110cdd2918bd2b881cf8e011801a206020801"),
        ("lease_checkpoint", "015a060a04082a101ea206020801"),
        (
            "member_attr_set",
            "01aa512d08cdd2918bd2b881cf8e0112200a0764656661756c74121568747470\
             3a2f2f3132372e302e302e313a32333739a206020801",
        ),
        ("downgrade_info_set", "01b2510908011205332e342e30a206020801"),
        ("auth_enable", "01c23e00a206020801"),
        ("auth_disable", "019a3f00a206020801"),
        (
            "auth_user_add",
            "01e2440f0a01751a0022082432622430342468a206020801",
        ),
        ("auth_user_delete", "01ea44030a0175a206020801"),
        (
            "auth_user_change_password",
            "01fa440d0a01751a082432622430342468a206020801",
        ),
        ("auth_user_grant_role", "018245060a0175120172a206020801"),
        ("auth_user_revoke_role", "018a45060a0175120172a206020801"),
        ("auth_role_add", "01824b030a0172a206020801"),
        ("auth_role_delete", "018a4b030a0172a206020801"),
        (
            "auth_role_grant_permission",
            "019a4b0d0a0172120808021201611a0162a206020801",
        ),
        (
            "auth_role_revoke_permission",
            "01a24b090a01721201611a0162a206020801",
        ),
        ("batch", "01827d0b0a094a020801a206020802a206020801"),
    ];

    #[test]
    fn golden_bytes_of_every_command_kind() {
        let kinds = one_of_each();
        assert_eq!(kinds.len(), GOLDEN.len(), "a kind without golden bytes");
        let mut report = String::new();
        let mut ok = true;
        for ((name, req), (gname, gbytes)) in kinds.into_iter().zip(GOLDEN) {
            assert_eq!(name, *gname);
            let bytes = encode_versioned(&Command::new(1, req));
            let got = hex(&bytes);
            report.push_str(&format!("(\"{name}\", \"{got}\"),\n"));
            if got != *gbytes {
                ok = false;
            }
            let back: Command = decode_versioned(&bytes).unwrap();
            assert_eq!(encode_versioned(&back), bytes, "{name} round-trips");
        }
        assert!(
            ok,
            "the command format changed; the bytes now are:\n{report}"
        );
    }

    #[test]
    fn entries_votes_and_membership_round_trip() {
        let m = membership_from_pb(pb::Membership {
            configs: vec![pb::VoterSet { ids: vec![1, 2] }],
            nodes: [
                (
                    1,
                    pb::MemberNode {
                        name: "a".into(),
                        peer_urls: vec!["http://a:2380".into()],
                        voter_pending: false,
                    },
                ),
                (
                    2,
                    pb::MemberNode {
                        name: "b".into(),
                        peer_urls: vec!["http://b:2380".into()],
                        voter_pending: false,
                    },
                ),
                (
                    3,
                    pb::MemberNode {
                        name: "".into(),
                        peer_urls: vec!["http://c:2380".into()],
                        voter_pending: false,
                    },
                ),
                (
                    4,
                    pb::MemberNode {
                        name: "".into(),
                        peer_urls: vec!["http://d:2380".into()],
                        voter_pending: true,
                    },
                ),
            ]
            .into_iter()
            .collect(),
        });
        let log_id = LogId::new(CommittedLeaderId::new(3, 1), 17);
        for payload in [
            EntryPayload::Blank,
            EntryPayload::Normal(Command::new(
                5,
                Request::LeaseRevoke(LeaseRevokeRequest { id: 1 }),
            )),
            EntryPayload::Membership(m.clone()),
        ] {
            let e = Entry { log_id, payload };
            let back = decode_entry(&encode_entry(&e)).unwrap();
            assert_eq!(format!("{back:?}"), format!("{e:?}"));
        }
        // The in-place encoding is the plain LogEntry message's.
        let cmd = Command::new(5, Request::LeaseRevoke(LeaseRevokeRequest { id: 1 }));
        let plain = encode_versioned(&pb::LogEntry {
            log_id: Some(log_id_to_pb(&log_id)),
            payload: Some(pb::log_entry::Payload::Normal(cmd.clone())),
        });
        let e = Entry {
            log_id,
            payload: EntryPayload::Normal(cmd),
        };
        assert_eq!(encode_entry(&e), plain);
        let v = Vote::new_committed(4, 2);
        assert_eq!(decode_vote(&encode_vote(&v)).unwrap(), v);
        assert_eq!(decode_log_id(&encode_log_id(&log_id)).unwrap(), log_id);
        let sm = StoredMembership::new(Some(log_id), m.clone());
        assert_eq!(
            decode_stored_membership(&encode_stored_membership(&sm)).unwrap(),
            sm
        );
        let records = member_records(&m);
        assert_eq!(records.len(), 4);
        assert!(records.iter().find(|r| r.id == 3).unwrap().is_learner);
        // A voter raft still holds as a learner is a voter in the member records.
        assert!(!records.iter().find(|r| r.id == 4).unwrap().is_learner);
        assert!(decode_entry(&[2, 0]).is_err(), "another format version");
        assert!(decode_entry(&[1, 0xff]).is_err(), "garbage");
    }
}
