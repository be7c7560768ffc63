//! The applier on its own, as openraft tests its engine: feed a command, check the outcome,
//! the events and what the batch holds, with no raft and no sled. One test per request kind
//! and its refusals; a refusal must leave the batch empty and the revision where it was.

use std::sync::Arc;

use bytes::Bytes;

use super::{Applied, Applier, Command, Output, Refusal, Request};
use crate::alarm::AlarmStore;
use crate::auth::AuthStore;
use crate::lease::Lessor;
use crate::membership::{MemberRecord, Members};
use crate::mvcc::KvStore;
use crate::proto::etcdserverpb::{
    alarm_request::AlarmAction, compare, request_op, AlarmRequest, AlarmType, CompactionRequest,
    Compare, DeleteRangeRequest, LeaseCheckpoint, LeaseCheckpointRequest, LeaseGrantRequest,
    LeaseRevokeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use crate::proto::metastorepb::{MemberAttrSetRequest, MemberAttributes};
use crate::storage::{Backend, MemoryBackend, Tree, WriteBatch};

struct Stores {
    backend: Arc<dyn Backend>,
    kv: KvStore,
    leases: Lessor,
    members: Members,
    alarms: AlarmStore,
    auth: AuthStore,
}

impl Stores {
    fn new() -> Self {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
        let kv = KvStore::open(backend.clone()).expect("open");
        Stores {
            backend,
            kv,
            leases: Lessor::new(1),
            members: Members::default(),
            alarms: AlarmStore::default(),
            auth: AuthStore::default(),
        }
    }

    /// Apply one request as its own batch; the outcome and how many writes the batch held.
    fn apply(&mut self, req: Request) -> (Output, usize) {
        self.apply_cmd(Command::new(1, req))
    }

    /// The same for a request proposed by `user`, checked at auth revision `rev`.
    fn apply_as(&mut self, user: &str, rev: u64, req: Request) -> (Output, usize) {
        let mut cmd = Command::new(1, req);
        if let Some(h) = cmd.header.as_mut() {
            h.username = user.to_string();
            h.auth_revision = rev;
        }
        self.apply_cmd(cmd)
    }

    fn apply_cmd(&mut self, cmd: Command) -> (Output, usize) {
        let mut batch = WriteBatch::default();
        let out = Applier {
            kv: &mut self.kv,
            leases: &mut self.leases,
            members: &mut self.members,
            alarms: &mut self.alarms,
            auth: &mut self.auth,
            batch: &mut batch,
        }
        .apply(cmd)
        .expect("apply");
        let writes = batch.ops.len();
        self.backend.write(Tree::State, batch).expect("write");
        self.kv.batch_written();
        self.kv.run_scheduled_compactions().expect("compact");
        (out, writes)
    }

    /// A request that must be refused with `want`, changing nothing.
    fn refused(&mut self, req: Request, want: Refusal) {
        let before = self.kv.current_rev();
        let (out, writes) = self.apply(req);
        match out.applied {
            Applied::Refused(r) => assert_eq!(r, want),
            other => panic!("expected {want:?}, got {other:?}"),
        }
        assert_eq!(writes, 0, "a refusal wrote to the batch");
        assert!(out.events.is_empty(), "a refusal made events");
        assert_eq!(
            self.kv.current_rev(),
            before,
            "a refusal moved the revision"
        );
    }

    fn get(&self, key: &str) -> Option<(String, i64, i64)> {
        let req = RangeRequest {
            key: Bytes::from(key.to_string()),
            ..Default::default()
        };
        let resp = super::kv::range(&self.kv, &req)
            .expect("range")
            .expect("read");
        resp.kvs.first().map(|kv| {
            (
                String::from_utf8_lossy(&kv.value).into_owned(),
                kv.mod_revision,
                kv.lease,
            )
        })
    }
}

fn put(key: &str, value: &str) -> Request {
    Request::Put(PutRequest {
        key: Bytes::from(key.to_string()),
        value: Bytes::from(value.to_string()),
        ..Default::default()
    })
}

fn grant(id: i64, ttl: i64) -> Request {
    Request::LeaseGrant(LeaseGrantRequest { ttl, id })
}

#[test]
fn put_writes_a_revision_with_its_event_and_refuses_unknown_leases_and_missing_keys() {
    let mut s = Stores::new();
    let (out, _) = s.apply(put("a", "1"));
    assert!(matches!(out.applied, Applied::Put(_)));
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.events[0].0, 2, "the first write is revision 2");
    assert_eq!(s.get("a"), Some(("1".into(), 2, 0)));
    s.refused(
        Request::Put(PutRequest {
            key: "a".into(),
            lease: 99,
            ..Default::default()
        }),
        Refusal::LeaseNotFound,
    );
    s.refused(
        Request::Put(PutRequest {
            key: "missing".into(),
            ignore_value: true,
            ..Default::default()
        }),
        Refusal::KeyNotFound,
    );
}

#[test]
fn delete_range_removes_keys_in_one_revision() {
    let mut s = Stores::new();
    s.apply(put("a", "1"));
    s.apply(put("b", "2"));
    let (out, _) = s.apply(Request::DeleteRange(DeleteRangeRequest {
        key: "a".into(),
        range_end: "c".into(),
        prev_kv: true,
    }));
    match out.applied {
        Applied::DeleteRange(r) => {
            assert_eq!(r.deleted, 2);
            assert_eq!(r.prev_kvs.len(), 2);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(out.events.len(), 1, "one revision");
    assert_eq!(out.events[0].1.len(), 2, "two deletes in it");
    assert_eq!(s.get("a"), None);
    // Deleting nothing is no write and no revision.
    let before = s.kv.current_rev();
    let (out, _) = s.apply(Request::DeleteRange(DeleteRangeRequest {
        key: "zzz".into(),
        ..Default::default()
    }));
    assert!(matches!(out.applied, Applied::DeleteRange(ref r) if r.deleted == 0));
    assert_eq!(s.kv.current_rev(), before);
}

#[test]
fn txn_takes_its_branch_and_refuses_reads_at_bad_revisions() {
    let mut s = Stores::new();
    s.apply(put("k", "v1"));
    let txn = |value: &str| {
        Request::Txn(TxnRequest {
            compare: vec![Compare {
                result: compare::CompareResult::Equal as i32,
                target: compare::CompareTarget::Value as i32,
                key: "k".into(),
                range_end: Bytes::new(),
                target_union: Some(compare::TargetUnion::Value(Bytes::from(value.to_string()))),
            }],
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: "k".into(),
                    value: "v2".into(),
                    ..Default::default()
                })),
            }],
            failure: vec![RequestOp {
                request: Some(request_op::Request::RequestRange(RangeRequest {
                    key: "k".into(),
                    ..Default::default()
                })),
            }],
        })
    };
    let (out, _) = s.apply(txn("v1"));
    assert!(matches!(out.applied, Applied::Txn(ref r) if r.succeeded));
    assert_eq!(s.get("k").map(|g| g.0), Some("v2".into()));
    let before = s.kv.current_rev();
    let (out, writes) = s.apply(txn("v1"));
    assert!(matches!(out.applied, Applied::Txn(ref r) if !r.succeeded));
    assert_eq!(
        (writes, s.kv.current_rev()),
        (0, before),
        "a read branch writes nothing"
    );
    let read_at = |rev: i64| {
        Request::Txn(TxnRequest {
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestRange(RangeRequest {
                    key: "k".into(),
                    revision: rev,
                    ..Default::default()
                })),
            }],
            ..Default::default()
        })
    };
    s.refused(read_at(before + 10), Refusal::FutureRev);
    s.apply(Request::Compaction(CompactionRequest {
        revision: before,
        physical: true,
    }));
    s.refused(read_at(before - 1), Refusal::Compacted);
}

#[test]
fn compaction_refuses_old_and_future_revisions() {
    let mut s = Stores::new();
    for i in 0..5 {
        s.apply(put("k", &i.to_string()));
    }
    let compact = |revision| {
        Request::Compaction(CompactionRequest {
            revision,
            physical: false,
        })
    };
    let (out, _) = s.apply(compact(4));
    assert!(matches!(out.applied, Applied::Compaction(_)));
    assert_eq!(s.kv.compact_rev(), 4);
    s.refused(compact(4), Refusal::Compacted);
    s.refused(compact(3), Refusal::Compacted);
    s.refused(compact(100), Refusal::FutureRev);
}

#[test]
fn leases_grant_revoke_and_checkpoint_with_their_refusals() {
    let mut s = Stores::new();
    let (out, writes) = s.apply(grant(7, 60));
    assert!(matches!(out.applied, Applied::LeaseGrant(ref r) if r.id == 7 && r.ttl == 60));
    assert_eq!(writes, 1);
    s.refused(grant(7, 60), Refusal::LeaseExists);
    s.refused(
        grant(8, crate::lease::MAX_LEASE_TTL + 1),
        Refusal::LeaseTtlTooLarge,
    );
    s.apply(Request::Put(PutRequest {
        key: "owned".into(),
        value: "x".into(),
        lease: 7,
        ..Default::default()
    }));
    assert_eq!(s.get("owned").map(|g| g.2), Some(7));
    s.apply(Request::LeaseCheckpoint(LeaseCheckpointRequest {
        checkpoints: vec![LeaseCheckpoint {
            id: 7,
            remaining_ttl: 20,
        }],
    }));
    assert_eq!(s.leases.get(7).map(|l| l.remaining_ttl), Some(20));
    let (out, _) = s.apply(Request::LeaseRevoke(LeaseRevokeRequest { id: 7 }));
    assert!(matches!(out.applied, Applied::LeaseRevoke(_)));
    assert_eq!(out.events.len(), 1, "the lease's keys go in one revision");
    assert_eq!(s.get("owned"), None);
    s.refused(
        Request::LeaseRevoke(LeaseRevokeRequest { id: 7 }),
        Refusal::LeaseNotFound,
    );
}

#[test]
fn a_raised_nospace_alarm_refuses_what_adds_data_only() {
    let mut s = Stores::new();
    s.apply(put("k", "v"));
    let alarm = |action: AlarmAction, alarm: AlarmType| {
        Request::Alarm(AlarmRequest {
            action: action as i32,
            member_id: 1,
            alarm: alarm as i32,
        })
    };
    let (out, _) = s.apply(alarm(AlarmAction::Activate, AlarmType::Nospace));
    assert!(matches!(out.applied, Applied::Alarm(ref r) if r.alarms.len() == 1));
    let (out, _) = s.apply(alarm(AlarmAction::Get, AlarmType::None));
    assert!(matches!(out.applied, Applied::Alarm(ref r) if r.alarms.len() == 1));
    s.refused(put("k", "w"), Refusal::NoSpace);
    s.refused(grant(1, 60), Refusal::NoSpace);
    s.refused(
        Request::Txn(TxnRequest {
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestTxn(TxnRequest {
                    success: vec![RequestOp {
                        request: Some(request_op::Request::RequestPut(PutRequest {
                            key: "nested".into(),
                            ..Default::default()
                        })),
                    }],
                    ..Default::default()
                })),
            }],
            ..Default::default()
        }),
        Refusal::NoSpace,
    );
    let (out, _) = s.apply(Request::DeleteRange(DeleteRangeRequest {
        key: "k".into(),
        ..Default::default()
    }));
    assert!(matches!(out.applied, Applied::DeleteRange(ref r) if r.deleted == 1));
    let (out, _) = s.apply(alarm(AlarmAction::Deactivate, AlarmType::Corrupt));
    assert!(matches!(out.applied, Applied::Alarm(ref r) if r.alarms.is_empty()));
    s.apply(alarm(AlarmAction::Deactivate, AlarmType::Nospace));
    let (out, _) = s.apply(put("k", "again"));
    assert!(matches!(out.applied, Applied::Put(_)));
}

#[test]
fn a_raised_corrupt_alarm_refuses_every_write_but_alarms() {
    let mut s = Stores::new();
    s.apply(put("k", "v"));
    let alarm = |action: AlarmAction| {
        Request::Alarm(AlarmRequest {
            action: action as i32,
            member_id: 1,
            alarm: AlarmType::Corrupt as i32,
        })
    };
    s.apply(alarm(AlarmAction::Activate));
    s.refused(put("k", "w"), Refusal::Corrupt);
    s.refused(grant(1, 60), Refusal::Corrupt);
    s.refused(
        Request::DeleteRange(DeleteRangeRequest {
            key: "k".into(),
            ..Default::default()
        }),
        Refusal::Corrupt,
    );
    s.refused(Request::Txn(TxnRequest::default()), Refusal::Corrupt);
    let (out, _) = s.apply(alarm(AlarmAction::Deactivate));
    assert!(matches!(out.applied, Applied::Alarm(ref r) if r.alarms.len() == 1));
    let (out, _) = s.apply(put("k", "again"));
    assert!(matches!(out.applied, Applied::Put(_)));
}

#[test]
fn members_publish_attributes_and_unknown_members_are_ignored() {
    let mut s = Stores::new();
    let mut b = WriteBatch::default();
    s.members.set_config(
        vec![MemberRecord {
            id: 5,
            name: "a".into(),
            peer_urls: vec!["http://a:2380".into()],
            client_urls: Vec::new(),
            is_learner: false,
        }],
        &mut b,
    );
    let attr = |id| {
        Request::MemberAttrSet(MemberAttrSetRequest {
            member_id: id,
            member_attributes: Some(MemberAttributes {
                name: "a".into(),
                client_urls: vec!["http://a:2379".into()],
            }),
        })
    };
    let (out, writes) = s.apply(attr(5));
    assert!(matches!(out.applied, Applied::None));
    assert_eq!(writes, 1);
    assert_eq!(s.members.get(5).unwrap().client_urls, vec!["http://a:2379"]);
    let (_, writes) = s.apply(attr(6));
    assert_eq!(writes, 0, "not a member: nothing written");
}

#[test]
fn a_batch_gives_each_request_its_revision_and_an_empty_envelope_changes_nothing() {
    let mut s = Stores::new();
    let (out, _) = s.apply(Request::Batch(
        crate::proto::metastorepb::InternalRaftBatch {
            requests: vec![
                Command::new(2, put("a", "1")),
                Command::new(3, grant(1, 1_000_000_000_000)),
                Command::new(4, put("b", "2")),
            ],
        },
    ));
    match out.applied {
        Applied::Batch(all) => {
            assert!(matches!(all[0], Applied::Put(_)));
            assert!(matches!(
                all[1],
                Applied::Refused(Refusal::LeaseTtlTooLarge)
            ));
            assert!(matches!(all[2], Applied::Put(_)));
        }
        other => panic!("{other:?}"),
    }
    let revs: Vec<i64> = out.events.iter().map(|(r, _)| *r).collect();
    assert_eq!(revs, vec![2, 3]);
    let before = s.kv.current_rev();
    let mut batch = WriteBatch::default();
    let out = Applier {
        kv: &mut s.kv,
        leases: &mut s.leases,
        members: &mut s.members,
        alarms: &mut s.alarms,
        auth: &mut s.auth,
        batch: &mut batch,
    }
    .apply(Command {
        header: None,
        request: None,
    })
    .unwrap();
    assert!(matches!(out.applied, Applied::None));
    assert!(batch.ops.is_empty());
    assert_eq!(s.kv.current_rev(), before);
}

/// Auth at apply: writes are checked against the store as it is when they apply, for the
/// header's user and auth revision; a refusal changes nothing.
#[test]
fn writes_are_checked_at_apply_against_the_auth_revision() {
    use crate::auth::Error as AuthError;
    use crate::proto::authpb::{permission::Type, Permission, UserAddOptions};
    use crate::proto::etcdserverpb::{
        AuthEnableRequest, AuthRoleAddRequest, AuthRoleGrantPermissionRequest,
        AuthRoleRevokePermissionRequest, AuthUserAddRequest, AuthUserGrantRoleRequest,
    };
    let mut s = Stores::new();
    let user_add = |name: &str| {
        Request::AuthUserAdd(AuthUserAddRequest {
            name: name.into(),
            hashed_password: "$2b$04$hash".into(),
            options: Some(UserAddOptions { no_password: false }),
            ..Default::default()
        })
    };
    let grant = |user: &str, role: &str| {
        Request::AuthUserGrantRole(AuthUserGrantRoleRequest {
            user: user.into(),
            role: role.into(),
        })
    };
    for req in [
        user_add("root"),
        grant("root", "root"),
        user_add("u"),
        Request::AuthRoleAdd(AuthRoleAddRequest { name: "w".into() }),
        Request::AuthRoleGrantPermission(AuthRoleGrantPermissionRequest {
            name: "w".into(),
            perm: Some(Permission {
                perm_type: Type::Write as i32,
                key: Bytes::from_static(b"k"),
                range_end: Bytes::new(),
            }),
        }),
        grant("u", "w"),
        Request::AuthEnable(AuthEnableRequest {}),
    ] {
        let (out, _) = s.apply(req);
        assert!(matches!(out.applied, Applied::None), "{:?}", out.applied);
    }
    let put = |key: &'static str| {
        Request::Put(PutRequest {
            key: Bytes::from_static(key.as_bytes()),
            value: Bytes::from_static(b"v"),
            ..Default::default()
        })
    };
    let rev = s.auth.revision();
    let (out, _) = s.apply_as("u", rev, put("k"));
    assert!(matches!(out.applied, Applied::Put(_)));
    let kv_rev = s.kv.current_rev();
    let refused = |s: &mut Stores, user: &str, rev: u64, req: Request| {
        let (out, writes) = s.apply_as(user, rev, req);
        assert_eq!(writes, 0, "a refusal wrote");
        match out.applied {
            Applied::Refused(Refusal::Auth(e)) => e,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        refused(&mut s, "u", rev, put("other")),
        AuthError::PermissionDenied
    );
    assert_eq!(refused(&mut s, "", 0, put("k")), AuthError::UserEmpty);
    // an auth change by someone without the root role
    assert_eq!(
        refused(&mut s, "u", rev, user_add("x")),
        AuthError::PermissionDenied
    );
    // the permission is revoked after the proposer checked it: refused as old
    let (out, _) = s.apply_as(
        "root",
        rev,
        Request::AuthRoleRevokePermission(AuthRoleRevokePermissionRequest {
            role: "w".into(),
            key: Bytes::from_static(b"k"),
            range_end: Bytes::new(),
        }),
    );
    assert!(matches!(out.applied, Applied::None));
    assert_eq!(
        refused(&mut s, "u", rev, put("k")),
        AuthError::AuthOldRevision
    );
    let now = s.auth.revision();
    assert_eq!(
        refused(&mut s, "u", now, put("k")),
        AuthError::PermissionDenied
    );
    // a nested txn's put is checked too
    let nested = Request::Txn(TxnRequest {
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestTxn(TxnRequest {
                success: vec![RequestOp {
                    request: Some(request_op::Request::RequestPut(PutRequest {
                        key: Bytes::from_static(b"k"),
                        ..Default::default()
                    })),
                }],
                ..Default::default()
            })),
        }],
        ..Default::default()
    });
    assert_eq!(
        refused(&mut s, "u", now, nested),
        AuthError::PermissionDenied
    );
    assert_eq!(s.kv.current_rev(), kv_rev);
}
