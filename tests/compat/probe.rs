//! The differential probe: edge-case and malformed requests sent one by one to etcd and to
//! metastore, comparing each answer and then the whole store (every key with its value,
//! revisions, version and lease, and the store's revision). Every case is a scenario of
//! the report; a case whose difference docs/compat.md keeps says why.

use bytes::Bytes;
use prost::Message;

use metastore::proto::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    AlarmRequest, AlarmResponse, CompactionRequest, CompactionResponse, Compare,
    DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest, LeaseGrantResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, PutRequest, PutResponse, RangeRequest,
    RangeResponse, RequestOp, TxnRequest,
};

use crate::edge::{b, del, nested, put, txn, txn_obs};
use crate::raw::{self, channel, status_obs, unary};
use crate::{Pair, Report};

/// How an answer is read.
#[derive(Clone, Copy)]
enum Answer {
    Range,
    Put,
    Delete,
    Txn,
    Compact,
    Grant,
    Revoke,
    TimeToLive,
    Leases,
    Alarm,
}

struct Case {
    name: String,
    method: &'static str,
    body: Vec<u8>,
    answer: Answer,
    /// Why a difference here is kept (docs/compat.md), if it is.
    kept: Option<&'static str>,
}

const RANGE: &str = "/etcdserverpb.KV/Range";
const PUT: &str = "/etcdserverpb.KV/Put";
const DELETE: &str = "/etcdserverpb.KV/DeleteRange";
const TXN: &str = "/etcdserverpb.KV/Txn";
const COMPACT: &str = "/etcdserverpb.KV/Compact";
const GRANT: &str = "/etcdserverpb.Lease/LeaseGrant";
const REVOKE: &str = "/etcdserverpb.Lease/LeaseRevoke";
const TTL: &str = "/etcdserverpb.Lease/LeaseTimeToLive";
const LEASES: &str = "/etcdserverpb.Lease/LeaseLeases";
const ALARM: &str = "/etcdserverpb.Maintenance/Alarm";

fn bx(v: &[u8]) -> Bytes {
    Bytes::copy_from_slice(v)
}

/// The probe's own keys: `probe/` up to `probe0`.
const P: &[u8] = b"probe/";
const PE: &[u8] = b"probe0";

fn k(s: &str) -> String {
    format!("probe/{s}")
}

fn cases() -> Vec<Case> {
    let mut cs: Vec<Case> = Vec::new();
    let mut add = |name: String, method, body: Vec<u8>, answer, kept| {
        cs.push(Case {
            name: format!("probe-{:03}-{name}", cs.len()),
            method,
            body,
            answer,
            kept,
        })
    };
    let range = |key: &[u8], end: &[u8]| RangeRequest {
        key: bx(key),
        range_end: bx(end),
        ..Default::default()
    };
    let pr = |key: &[u8], value: &[u8]| PutRequest {
        key: bx(key),
        value: bx(value),
        ..Default::default()
    };
    // a few keys to read, with odd bytes among them
    for (i, key) in [
        k("a").into_bytes(),
        k("b").into_bytes(),
        k("c").into_bytes(),
        vec![0],
        vec![0xff, 0xfe],
        k("a\0").into_bytes(),
        k("z").repeat(30).into_bytes(),
    ]
    .into_iter()
    .enumerate()
    {
        let body = pr(&key, format!("v{i}").as_bytes()).encode_to_vec();
        add(format!("put-seed-{i}"), PUT, body, Answer::Put, None);
    }
    // Range: range ends, limits, revisions, sorts, filters
    let a = k("a").into_bytes();
    for (name, key, end) in [
        ("empty-key", vec![], vec![]),
        ("empty-key-all", vec![], vec![0]),
        ("single", a.clone(), vec![]),
        ("to-end", a.clone(), vec![0]),
        ("all", vec![0], vec![0]),
        ("prefix", k("").into_bytes(), b"probe0".to_vec()),
        ("equal-end", a.clone(), a.clone()),
        ("inverted", k("c").into_bytes(), a.clone()),
        ("end-ff", a.clone(), vec![0xff]),
        ("missing", k("nope").into_bytes(), vec![]),
        ("nul-key", vec![0], vec![]),
        ("ff-key", vec![0xff, 0xfe], vec![]),
    ] {
        let mut r = range(&key, &end);
        // past the probe's keys, only how many: under `make compat` other groups' keys
        // are there too, some with leases whose ids each server picks
        r.count_only = end.first() == Some(&0) || end.first() == Some(&0xff);
        let body = r.encode_to_vec();
        add(format!("range-{name}"), RANGE, body, Answer::Range, None);
    }
    for limit in [-1i64, 0, 1, 2, i64::MAX] {
        let mut r = range(P, PE);
        r.limit = limit;
        add(
            format!("range-limit-{limit}"),
            RANGE,
            r.encode_to_vec(),
            Answer::Range,
            None,
        );
    }
    for rev in [-1i64, 0, 1, 3, 5, 1_000_000, i64::MIN] {
        let mut r = range(P, PE);
        r.revision = rev;
        add(
            format!("range-rev-{rev}"),
            RANGE,
            r.encode_to_vec(),
            Answer::Range,
            None,
        );
    }
    for order in 0..3 {
        for target in 0..5 {
            let mut r = range(P, PE);
            r.sort_order = order;
            r.sort_target = target;
            r.limit = 3;
            let name = format!("range-sort-{order}-{target}");
            add(name, RANGE, r.encode_to_vec(), Answer::Range, None);
        }
    }
    for order in [3, -1] {
        let mut r = range(P, PE);
        r.sort_order = order;
        add(
            format!("range-sort-order-{order}"),
            RANGE,
            r.encode_to_vec(),
            Answer::Range,
            Some("invalid sort option: etcd 3.5's refusal, etcd 3.4 ignores the order"),
        );
    }
    for (name, keys_only, count_only, serializable) in [
        ("keys-only", true, false, false),
        ("count-only", false, true, false),
        ("both", true, true, false),
        ("serializable", false, false, true),
    ] {
        let mut r = range(P, PE);
        r.keys_only = keys_only;
        r.count_only = count_only;
        r.serializable = serializable;
        add(
            format!("range-{name}"),
            RANGE,
            r.encode_to_vec(),
            Answer::Range,
            None,
        );
    }
    for (name, v) in [("neg", -5i64), ("zero", 0), ("mid", 4), ("big", i64::MAX)] {
        for field in 0..4 {
            let mut r = range(P, PE);
            match field {
                0 => r.min_mod_revision = v,
                1 => r.max_mod_revision = v,
                2 => r.min_create_revision = v,
                _ => r.max_create_revision = v,
            }
            let name = format!("range-filter-{field}-{name}");
            add(name, RANGE, r.encode_to_vec(), Answer::Range, None);
        }
    }
    // Put: empty and odd keys, flags that contradict, leases that do not exist
    let mut put_case = |name: &str, p: PutRequest| {
        add(
            format!("put-{name}"),
            PUT,
            p.encode_to_vec(),
            Answer::Put,
            None,
        );
    };
    put_case("empty-key", pr(b"", b"x"));
    put_case("empty-value", pr(k("e").as_bytes(), b""));
    put_case("binary-value", pr(k("bin").as_bytes(), &[0, 1, 2, 0xff]));
    put_case("long-key", pr("p".repeat(3000).as_bytes(), b"x"));
    put_case("big-value", pr(k("big").as_bytes(), &vec![b'v'; 100_000]));
    for (name, ignore_value, value, key) in [
        ("ignore-value-with-value", true, "x", k("a")),
        ("ignore-value-existing", true, "", k("a")),
        ("ignore-value-missing", true, "", k("nope")),
    ] {
        let mut p = pr(key.as_bytes(), value.as_bytes());
        p.ignore_value = ignore_value;
        put_case(name, p);
    }
    for (name, ignore_lease, lease, key) in [
        ("ignore-lease-with-lease", true, 5, k("a")),
        ("ignore-lease-existing", true, 0, k("a")),
        ("ignore-lease-missing-key", true, 0, k("nope2")),
        ("missing-lease", false, 12345, k("a")),
        ("negative-lease", false, -7, k("a")),
    ] {
        let mut p = pr(key.as_bytes(), b"l");
        p.ignore_lease = ignore_lease;
        p.lease = lease;
        put_case(name, p);
    }
    let mut p = pr(k("b").as_bytes(), b"again");
    p.prev_kv = true;
    put_case("prev-kv", p);
    let mut p = pr(k("new").as_bytes(), b"first");
    p.prev_kv = true;
    put_case("prev-kv-new", p);
    // DeleteRange
    let d = |key: &[u8], end: &[u8], prev: bool| DeleteRangeRequest {
        key: bx(key),
        range_end: bx(end),
        prev_kv: prev,
    };
    for (name, req) in [
        ("empty-key", d(b"", b"", false)),
        ("missing", d(k("nope").as_bytes(), b"", true)),
        ("equal-end", d(k("b").as_bytes(), k("b").as_bytes(), true)),
        ("inverted", d(k("c").as_bytes(), k("a").as_bytes(), true)),
        ("single-prev", d(k("e").as_bytes(), b"", true)),
        (
            "range-prev",
            d(k("bin").as_bytes(), k("bio").as_bytes(), true),
        ),
        ("ff", d(&[0xff, 0xfe], b"", false)),
    ] {
        add(
            format!("delete-{name}"),
            DELETE,
            req.encode_to_vec(),
            Answer::Delete,
            None,
        );
    }
    // Txn: compares of every target and result, on present and missing keys
    let cmp =
        |key: &str, target: CompareTarget, result: CompareResult, u: Option<TargetUnion>| Compare {
            key: b(key),
            target: target as i32,
            result: result as i32,
            target_union: u,
            ..Default::default()
        };
    let targets = [
        (CompareTarget::Version, TargetUnion::Version(1)),
        (CompareTarget::Create, TargetUnion::CreateRevision(2)),
        (CompareTarget::Mod, TargetUnion::ModRevision(2)),
        (CompareTarget::Value, TargetUnion::Value(b("v1"))),
        (CompareTarget::Lease, TargetUnion::Lease(0)),
    ];
    let results = [
        CompareResult::Equal,
        CompareResult::Greater,
        CompareResult::Less,
        CompareResult::NotEqual,
    ];
    for (ti, (target, u)) in targets.iter().enumerate() {
        for (ri, result) in results.iter().enumerate() {
            for key in ["b", "nope"] {
                let c = cmp(&k(key), *target, *result, Some(u.clone()));
                let t = txn(
                    vec![c],
                    vec![RequestOp::default_get(&k("b"))],
                    vec![RequestOp::default_get(&k("c"))],
                );
                let name = format!("txn-cmp-{ti}-{ri}-{key}");
                add(name, TXN, t.encode_to_vec(), Answer::Txn, None);
            }
        }
    }
    let mut txn_case = |name: &str, t: TxnRequest| {
        add(
            format!("txn-{name}"),
            TXN,
            t.encode_to_vec(),
            Answer::Txn,
            None,
        );
    };
    txn_case("empty", txn(vec![], vec![], vec![]));
    txn_case(
        "cmp-empty-key",
        txn(
            vec![cmp("", CompareTarget::Version, CompareResult::Equal, None)],
            vec![],
            vec![],
        ),
    );
    txn_case(
        "cmp-union-mismatch",
        txn(
            vec![cmp(
                &k("b"),
                CompareTarget::Version,
                CompareResult::Greater,
                Some(TargetUnion::Value(b("x"))),
            )],
            vec![put(&k("mm"), "then")],
            vec![put(&k("mm"), "else")],
        ),
    );
    let mut over_range = cmp(
        &k(""),
        CompareTarget::Version,
        CompareResult::Greater,
        Some(TargetUnion::Version(0)),
    );
    over_range.range_end = bx(&[0]);
    txn_case(
        "cmp-range-to-end",
        txn(vec![over_range], vec![put(&k("rr"), "1")], vec![]),
    );
    txn_case(
        "none-op",
        txn(vec![], vec![RequestOp { request: None }], vec![]),
    );
    txn_case(
        "none-op-failure",
        txn(vec![], vec![], vec![RequestOp { request: None }]),
    );
    let many = |n: usize, tag: &str| {
        (0..n)
            .map(|i| put(&k(&format!("{tag}{i}")), "m"))
            .collect::<Vec<_>>()
    };
    txn_case("129-puts", txn(vec![], many(129, "m"), vec![]));
    txn_case("128-puts", txn(vec![], many(128, "n"), vec![]));
    let cmps = (0..129)
        .map(|i| {
            cmp(
                &k(&format!("c{i}")),
                CompareTarget::Version,
                CompareResult::Equal,
                None,
            )
        })
        .collect();
    txn_case("129-compares", txn(cmps, vec![], vec![]));
    txn_case(
        "dup-puts",
        txn(vec![], vec![put(&k("d"), "1"), put(&k("d"), "2")], vec![]),
    );
    txn_case(
        "put-then-delete",
        txn(vec![], vec![put(&k("d"), "1"), del(&k("d"), b"")], vec![]),
    );
    txn_case(
        "delete-prefix-put",
        txn(
            vec![],
            vec![del(&k(""), b"probe0"), put(&k("d"), "1")],
            vec![],
        ),
    );
    txn_case(
        "delete-to-end-put",
        txn(vec![], vec![del(&k("d"), &[0]), put(&k("e"), "1")], vec![]),
    );
    txn_case(
        "nested-both-branches",
        txn(
            vec![],
            vec![nested(txn(
                vec![],
                vec![put(&k("n"), "1")],
                vec![put(&k("n"), "2")],
            ))],
            vec![],
        ),
    );
    txn_case(
        "nested-conflict",
        txn(
            vec![],
            vec![
                nested(txn(vec![], vec![put(&k("n"), "1")], vec![])),
                put(&k("n"), "3"),
            ],
            vec![],
        ),
    );
    txn_case(
        "put-missing-lease",
        txn(
            vec![],
            vec![put(&k("ok"), "1"), {
                let mut p = pr(k("l").as_bytes(), b"1");
                p.lease = 999;
                RequestOp::put_op(p)
            }],
            vec![],
        ),
    );
    txn_case(
        "range-future-rev",
        txn(
            vec![],
            vec![put(&k("f"), "1"), {
                let mut r = range(k("f").as_bytes(), b"");
                r.revision = 1_000_000;
                RequestOp::range_op(r)
            }],
            vec![],
        ),
    );
    txn_case(
        "put-empty-key-nested",
        txn(
            vec![],
            vec![nested(txn(vec![], vec![put("", "1")], vec![]))],
            vec![],
        ),
    );
    // Compact
    for (name, rev, physical) in [
        ("neg", -1i64, false),
        ("zero", 0, false),
        ("future", 1_000_000, false),
        ("three", 3, true),
        ("three-again", 3, false),
        ("two", 2, false),
    ] {
        let c = CompactionRequest {
            revision: rev,
            physical,
        };
        add(
            format!("compact-{name}"),
            COMPACT,
            c.encode_to_vec(),
            Answer::Compact,
            None,
        );
    }
    for (name, rev) in [("below-compaction", 2i64), ("at-compaction", 3)] {
        let mut r = range(P, PE);
        r.revision = rev;
        add(
            format!("range-{name}"),
            RANGE,
            r.encode_to_vec(),
            Answer::Range,
            None,
        );
    }
    // Leases, with ids the client picks (a server's own ids are random)
    for (name, ttl, id) in [
        ("ttl-neg", -1i64, 0x7001i64),
        ("ttl-zero", 0, 0x7002),
        ("ttl-one", 1, 0x7003),
        ("ttl-big", 9_000_000_001, 0x7004),
        ("ttl-max", 9_000_000_000, 0x7005),
        ("id-neg", 60, -5),
        ("ok", 600, 0x7006),
        ("exists", 600, 0x7006),
    ] {
        let g = LeaseGrantRequest { ttl, id };
        add(
            format!("lease-grant-{name}"),
            GRANT,
            g.encode_to_vec(),
            Answer::Grant,
            None,
        );
        if ttl < 10 {
            // a short lease would expire while the probe runs, at no fixed point: revoke it
            let r = LeaseRevokeRequest { id };
            let name = format!("lease-revoke-short-{name}");
            add(name, REVOKE, r.encode_to_vec(), Answer::Revoke, None);
        }
    }
    let mut lp = pr(k("leased").as_bytes(), b"1");
    lp.lease = 0x7006;
    add(
        "put-with-lease".into(),
        PUT,
        lp.encode_to_vec(),
        Answer::Put,
        None,
    );
    for (name, id, keys) in [
        ("missing", 0x1234i64, true),
        ("ok", 0x7006, true),
        ("ok-nokeys", 0x7006, false),
        ("zero", 0, false),
    ] {
        let t = LeaseTimeToLiveRequest { id, keys };
        add(
            format!("lease-ttl-{name}"),
            TTL,
            t.encode_to_vec(),
            Answer::TimeToLive,
            None,
        );
    }
    add(
        "lease-leases".into(),
        LEASES,
        LeaseLeasesRequest {}.encode_to_vec(),
        Answer::Leases,
        None,
    );
    for (name, id) in [
        ("zero", 0i64),
        ("missing", 0x1234),
        ("ok", 0x7006),
        ("again", 0x7006),
    ] {
        let r = LeaseRevokeRequest { id };
        add(
            format!("lease-revoke-{name}"),
            REVOKE,
            r.encode_to_vec(),
            Answer::Revoke,
            None,
        );
    }
    add(
        "alarm-get".into(),
        ALARM,
        AlarmRequest::default().encode_to_vec(),
        Answer::Alarm,
        None,
    );
    // Malformed messages on every method
    let garbage: [(&str, Vec<u8>); 6] = [
        ("ff", vec![0xff]),
        ("truncated-field", vec![0x0a, 0x05, b'a']),
        ("open-group", vec![0x0b]),
        (
            "bad-varint",
            vec![
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
        ),
        ("unknown-field", vec![0xf8, 0x07, 0x01]),
        ("wrong-wire-type", vec![0x0d, 0, 0, 0, 0]),
    ];
    let methods: [(&str, &'static str, Answer); 7] = [
        ("range", RANGE, Answer::Range),
        ("put", PUT, Answer::Put),
        ("delete", DELETE, Answer::Delete),
        ("txn", TXN, Answer::Txn),
        ("compact", COMPACT, Answer::Compact),
        ("grant", GRANT, Answer::Grant),
        ("revoke", REVOKE, Answer::Revoke),
    ];
    for (mname, method, answer) in methods {
        for (gname, bytes) in &garbage {
            if mname == "grant" && *gname == "unknown-field" {
                // an empty grant: the server picks the lease id, at random
                continue;
            }
            add(
                format!("malformed-{mname}-{gname}"),
                method,
                bytes.clone(),
                answer,
                None,
            );
        }
    }
    add(
        "empty-body-range".into(),
        RANGE,
        vec![],
        Answer::Range,
        None,
    );
    add("empty-body-put".into(), PUT, vec![], Answer::Put, None);
    add("empty-body-txn".into(), TXN, vec![], Answer::Txn, None);
    cs
}

trait OpExt {
    fn default_get(key: &str) -> RequestOp;
    fn put_op(p: PutRequest) -> RequestOp;
    fn range_op(r: RangeRequest) -> RequestOp;
}

impl OpExt for RequestOp {
    fn default_get(key: &str) -> RequestOp {
        RequestOp::range_op(RangeRequest {
            key: b(key),
            ..Default::default()
        })
    }
    fn put_op(p: PutRequest) -> RequestOp {
        use metastore::proto::etcdserverpb::request_op::Request;
        RequestOp {
            request: Some(Request::RequestPut(p)),
        }
    }
    fn range_op(r: RangeRequest) -> RequestOp {
        use metastore::proto::etcdserverpb::request_op::Request;
        RequestOp {
            request: Some(Request::RequestRange(r)),
        }
    }
}

fn answer_obs(answer: Answer, r: &Result<Vec<u8>, tonic::Status>) -> String {
    let o = match answer {
        Answer::Range => raw::obs::<RangeResponse>(r),
        Answer::Put => raw::obs::<PutResponse>(r),
        Answer::Delete => raw::obs::<DeleteRangeResponse>(r),
        Answer::Txn => txn_obs(r),
        Answer::Compact => raw::obs::<CompactionResponse>(r),
        Answer::Grant => raw::obs::<LeaseGrantResponse>(r),
        Answer::Revoke => raw::obs::<LeaseRevokeResponse>(r),
        Answer::TimeToLive => raw::obs::<LeaseTimeToLiveResponse>(r),
        // etcd lists leases in map order
        Answer::Leases => match r {
            Ok(bytes) => {
                let mut l = LeaseLeasesResponse::decode(bytes.as_slice()).unwrap();
                // only the probe's own leases (other groups' ids are each server's pick)
                l.leases
                    .retain(|s| (0x7000..0x8000).contains(&s.id) || s.id == -5);
                l.leases.sort_by_key(|s| s.id);
                crate::common::normalize_debug(&format!("{l:?}"))
            }
            Err(s) => status_obs(s),
        },
        Answer::Alarm => raw::obs::<AlarmResponse>(r),
    };
    // a lease's remaining TTL counts down while the probe runs
    let re = regex::Regex::new(r"\bttl: \d+").unwrap();
    re.replace_all(&o, "ttl: _").into_owned()
}

/// Every key the probe can write, with what a read shows of it, and the store's revision
/// (other groups' keys are left out: under `make compat` they share the store, and some
/// carry leases with ids each server picks).
async fn whole_store(ch: &tonic::transport::Channel) -> String {
    let mut parts = Vec::new();
    let long = "p".repeat(3000).into_bytes();
    for (key, end) in [
        (k("").into_bytes(), b"probe0".to_vec()),
        (vec![0], vec![]),
        (vec![0xff, 0xfe], vec![]),
        (long, vec![]),
    ] {
        parts.push(store_part(ch, key, end).await);
    }
    parts.join(" + ")
}

async fn store_part(ch: &tonic::transport::Channel, key: Vec<u8>, end: Vec<u8>) -> String {
    let r = RangeRequest {
        key: Bytes::from(key),
        range_end: Bytes::from(end),
        ..Default::default()
    };
    match unary(ch, RANGE, r.encode_to_vec()).await {
        Ok(bytes) => {
            let rr = RangeResponse::decode(bytes.as_slice()).unwrap();
            let kvs: Vec<String> = rr
                .kvs
                .iter()
                .map(|kv| {
                    format!(
                        "{:?}={}b c{} m{} v{} l{}",
                        String::from_utf8_lossy(&kv.key)
                            .chars()
                            .take(40)
                            .collect::<String>(),
                        kv.value.len(),
                        kv.create_revision,
                        kv.mod_revision,
                        kv.version,
                        kv.lease
                    )
                })
                .collect();
            let rev = rr.header.map(|h| h.revision).unwrap_or_default();
            format!("rev {rev} count {} {kvs:?}", rr.count)
        }
        Err(s) => format!("store: {}", status_obs(&s)),
    }
}

async fn run_all(endpoint: &str, cases: &[Case]) -> Vec<(String, String)> {
    let ch = channel(endpoint).await;
    let mut out = Vec::with_capacity(cases.len());
    for c in cases {
        let r = unary(&ch, c.method, c.body.clone()).await;
        out.push((answer_obs(c.answer, &r), whole_store(&ch).await));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_probe_matches_etcd() {
    let Some(pair) = Pair::start(&[]) else { return };
    let cases = cases();
    assert!(cases.len() >= 150, "the probe sends {} cases", cases.len());
    let e = run_all(&pair.etcd.endpoint, &cases).await;
    let m = run_all(&pair.ms.endpoint, &cases).await;
    let mut rep = Report::default();
    for ((c, (ea, es)), (ma, ms)) in cases.iter().zip(&e).zip(&m) {
        rep.begin(&c.name);
        rep.steps += 2;
        let answer = (ea != ma).then(|| format!("answer\n  etcd:      {ea}\n  metastore: {ma}"));
        let store =
            (es != ms).then(|| format!("store after\n  etcd:      {es}\n  metastore: {ms}"));
        let diff: Vec<String> = answer.into_iter().chain(store).collect();
        if diff.is_empty() {
            continue;
        }
        match c.kept {
            Some(reason) => rep.kept.push(format!("[{}] {reason}", c.name)),
            None => rep.diffs.push(format!("[{}] {}", c.name, diff.join("\n"))),
        }
    }
    rep.finish("differential_probe_matches_etcd");
}
