//! Decoding of the messages that nest without bound: a txn holds ops that hold txns
//! (`TxnRequest` → `RequestOp` → `TxnRequest`, and the same for responses).
//!
//! prost stops at 100 nested messages, which is a txn about 50 levels deep; etcd (Go) has
//! no such limit and accepts any depth its `--max-txn-ops` budget allows (a nested txn
//! counts against what its parent has left, so the default 128 admits 129 levels). Here
//! the recursive fields are walked by hand, with a depth counter of our own, and every
//! other field is handed to prost's generated `merge_field` with a fresh context (those
//! messages are shallow). The same decoder reads the raft log and the peer messages, so a
//! txn accepted at the edge always decodes again from the log.
//!
//! Depth is counted in txns: a top-level txn is level 1. Past [`MAX_TXN_DEPTH`] the edge
//! truncates (the deeper txn becomes an empty one, which the request checks refuse with
//! etcd's "too many operations" at the same place etcd would), and every other reader
//! refuses: nothing deeper is ever written.

use bytes::Buf;
use prost::encoding::{decode_key, decode_varint, DecodeContext, WireType};
use prost::Message;

use super::etcdserverpb::{
    request_op, response_op, RequestOp, ResponseOp, TxnRequest, TxnResponse,
};
use super::metastorepb::{
    internal_raft_request, internal_raft_response, log_entry, InternalRaftBatch,
    InternalRaftRequest, InternalRaftResponse, InternalRaftResponses, LogEntry,
};

/// The deepest txn nesting anything here decodes (the request checks refuse deeper ones).
pub const MAX_TXN_DEPTH: usize = 512;

/// Why nested bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NestedError {
    #[error("{0}")]
    Decode(#[from] prost::DecodeError),
    #[error("txn nested deeper than {MAX_TXN_DEPTH} levels")]
    TooDeep,
    #[error("invalid wire type for a nested message")]
    WireType,
    #[error("buffer underflow")]
    Underflow,
}

/// What to do with a txn deeper than [`MAX_TXN_DEPTH`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deep {
    /// Keep it as an empty txn (the edge: the checks then refuse it as etcd would).
    Truncate,
    /// Fail (the log and the peers: nothing that deep is ever written).
    Refuse,
}

struct Ctx {
    txn_level: usize,
    deep: Deep,
}

/// A message whose nested fields this file walks itself.
trait Walk: Message + Default {
    fn field(
        &mut self,
        tag: u32,
        wt: WireType,
        buf: &mut &[u8],
        ctx: &mut Ctx,
    ) -> Result<(), NestedError>;
}

fn walk<M: Walk>(mut buf: &[u8], ctx: &mut Ctx) -> Result<M, NestedError> {
    let mut m = M::default();
    while buf.has_remaining() {
        let (tag, wt) = decode_key(&mut buf)?;
        m.field(tag, wt, &mut buf, ctx)?;
    }
    Ok(m)
}

/// The bytes of a length-delimited field, advancing `buf` past them.
fn body<'a>(wt: WireType, buf: &mut &'a [u8]) -> Result<&'a [u8], NestedError> {
    if wt != WireType::LengthDelimited {
        return Err(NestedError::WireType);
    }
    let len = decode_varint(buf)?;
    if len > buf.len() as u64 {
        return Err(NestedError::Underflow);
    }
    let (inner, rest) = buf.split_at(len as usize);
    *buf = rest;
    Ok(inner)
}

/// Any field this file does not walk: prost's generated code, with a fresh context.
fn shallow<M: Message>(
    m: &mut M,
    tag: u32,
    wt: WireType,
    buf: &mut &[u8],
) -> Result<(), NestedError> {
    m.merge_field(tag, wt, buf, DecodeContext::default())?;
    Ok(())
}

/// One level deeper in txns, then `f`; or what `Deep` says past the limit.
fn deeper<T: Default>(
    ctx: &mut Ctx,
    inner: &[u8],
    f: impl FnOnce(&[u8], &mut Ctx) -> Result<T, NestedError>,
) -> Result<T, NestedError> {
    if ctx.txn_level >= MAX_TXN_DEPTH {
        return match ctx.deep {
            Deep::Truncate => Ok(T::default()),
            Deep::Refuse => Err(NestedError::TooDeep),
        };
    }
    ctx.txn_level += 1;
    let r = f(inner, ctx);
    ctx.txn_level -= 1;
    r
}

impl Walk for TxnRequest {
    fn field(
        &mut self,
        tag: u32,
        wt: WireType,
        buf: &mut &[u8],
        ctx: &mut Ctx,
    ) -> Result<(), NestedError> {
        match tag {
            2 => self.success.push(walk(body(wt, buf)?, ctx)?),
            3 => self.failure.push(walk(body(wt, buf)?, ctx)?),
            _ => shallow(self, tag, wt, buf)?,
        }
        Ok(())
    }
}

impl Walk for RequestOp {
    fn field(
        &mut self,
        tag: u32,
        wt: WireType,
        buf: &mut &[u8],
        ctx: &mut Ctx,
    ) -> Result<(), NestedError> {
        if tag != 4 {
            return shallow(self, tag, wt, buf);
        }
        let inner = body(wt, buf)?;
        let t = deeper(ctx, inner, walk::<TxnRequest>)?;
        self.request = Some(request_op::Request::RequestTxn(t));
        Ok(())
    }
}

impl Walk for TxnResponse {
    fn field(
        &mut self,
        tag: u32,
        wt: WireType,
        buf: &mut &[u8],
        ctx: &mut Ctx,
    ) -> Result<(), NestedError> {
        match tag {
            3 => self.responses.push(walk(body(wt, buf)?, ctx)?),
            _ => shallow(self, tag, wt, buf)?,
        }
        Ok(())
    }
}

impl Walk for ResponseOp {
    fn field(
        &mut self,
        tag: u32,
        wt: WireType,
        buf: &mut &[u8],
        ctx: &mut Ctx,
    ) -> Result<(), NestedError> {
        if tag != 4 {
            return shallow(self, tag, wt, buf);
        }
        let inner = body(wt, buf)?;
        let t = deeper(ctx, inner, walk::<TxnResponse>)?;
        self.response = Some(response_op::Response::ResponseTxn(t));
        Ok(())
    }
}

impl Walk for InternalRaftRequest {
    fn field(
        &mut self,
        tag: u32,
        wt: WireType,
        buf: &mut &[u8],
        ctx: &mut Ctx,
    ) -> Result<(), NestedError> {
        use internal_raft_request::Request;
        match tag {
            6 => {
                let t = deeper(ctx, body(wt, buf)?, walk::<TxnRequest>)?;
                self.request = Some(Request::Txn(t));
            }
            2000 => self.request = Some(Request::Batch(walk(body(wt, buf)?, ctx)?)),
            _ => shallow(self, tag, wt, buf)?,
        }
        Ok(())
    }
}

impl Walk for InternalRaftBatch {
    fn field(
        &mut self,
        tag: u32,
        wt: WireType,
        buf: &mut &[u8],
        ctx: &mut Ctx,
    ) -> Result<(), NestedError> {
        match tag {
            1 => self.requests.push(walk(body(wt, buf)?, ctx)?),
            _ => shallow(self, tag, wt, buf)?,
        }
        Ok(())
    }
}

impl Walk for InternalRaftResponse {
    fn field(
        &mut self,
        tag: u32,
        wt: WireType,
        buf: &mut &[u8],
        ctx: &mut Ctx,
    ) -> Result<(), NestedError> {
        use internal_raft_response::Response;
        match tag {
            6 => {
                let t = deeper(ctx, body(wt, buf)?, walk::<TxnResponse>)?;
                self.response = Some(Response::Txn(t));
            }
            2000 => self.response = Some(Response::Batch(walk(body(wt, buf)?, ctx)?)),
            _ => shallow(self, tag, wt, buf)?,
        }
        Ok(())
    }
}

impl Walk for InternalRaftResponses {
    fn field(
        &mut self,
        tag: u32,
        wt: WireType,
        buf: &mut &[u8],
        ctx: &mut Ctx,
    ) -> Result<(), NestedError> {
        match tag {
            1 => self.responses.push(walk(body(wt, buf)?, ctx)?),
            _ => shallow(self, tag, wt, buf)?,
        }
        Ok(())
    }
}

impl Walk for LogEntry {
    fn field(
        &mut self,
        tag: u32,
        wt: WireType,
        buf: &mut &[u8],
        ctx: &mut Ctx,
    ) -> Result<(), NestedError> {
        match tag {
            3 => self.payload = Some(log_entry::Payload::Normal(walk(body(wt, buf)?, ctx)?)),
            _ => shallow(self, tag, wt, buf)?,
        }
        Ok(())
    }
}

/// A message that may hold txns nested deeper than prost's limit.
pub trait DecodeNested: Sized {
    fn decode_nested(buf: &[u8], deep: Deep) -> Result<Self, NestedError>;
}

macro_rules! decode_nested {
    ($($ty:ty),*) => {$(
        impl DecodeNested for $ty {
            fn decode_nested(buf: &[u8], deep: Deep) -> Result<Self, NestedError> {
                // A top-level txn is level 1; the envelopes count from 0.
                let txn_level = usize::from(
                    std::any::TypeId::of::<$ty>() == std::any::TypeId::of::<TxnRequest>()
                        || std::any::TypeId::of::<$ty>() == std::any::TypeId::of::<TxnResponse>(),
                );
                walk(buf, &mut Ctx { txn_level, deep })
            }
        }
    )*};
}

decode_nested!(
    TxnRequest,
    TxnResponse,
    InternalRaftRequest,
    InternalRaftResponse,
    LogEntry
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::{Compare, PutRequest};

    fn nest(depth: usize) -> TxnRequest {
        let mut t = TxnRequest {
            compare: vec![Compare {
                key: bytes::Bytes::from_static(b"k"),
                ..Default::default()
            }],
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: bytes::Bytes::from_static(b"leaf"),
                    ..Default::default()
                })),
            }],
            failure: vec![],
        };
        for _ in 1..depth {
            t = TxnRequest {
                compare: vec![],
                success: vec![],
                failure: vec![RequestOp {
                    request: Some(request_op::Request::RequestTxn(t)),
                }],
            };
        }
        t
    }

    fn depth(t: &TxnRequest) -> usize {
        1 + t
            .success
            .iter()
            .chain(&t.failure)
            .filter_map(|op| match &op.request {
                Some(request_op::Request::RequestTxn(t)) => Some(depth(t)),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn decodes_what_prost_refuses_and_round_trips() {
        for d in [1, 2, 60, 120, MAX_TXN_DEPTH] {
            let t = nest(d);
            let bytes = t.encode_to_vec();
            if d > 50 {
                assert!(
                    TxnRequest::decode(bytes.as_slice()).is_err(),
                    "prost's own limit"
                );
            }
            let back = TxnRequest::decode_nested(&bytes, Deep::Refuse).unwrap();
            assert_eq!(back, t, "depth {d}");
            assert_eq!(depth(&back), d);
        }
    }

    #[test]
    fn past_the_limit_the_edge_truncates_and_others_refuse() {
        let t = nest(MAX_TXN_DEPTH + 5);
        let bytes = t.encode_to_vec();
        assert_eq!(
            TxnRequest::decode_nested(&bytes, Deep::Refuse),
            Err(NestedError::TooDeep)
        );
        let cut = TxnRequest::decode_nested(&bytes, Deep::Truncate).unwrap();
        assert_eq!(depth(&cut), MAX_TXN_DEPTH + 1);
    }

    #[test]
    fn the_log_envelope_decodes_a_deep_txn() {
        let cmd = InternalRaftRequest {
            header: None,
            request: Some(internal_raft_request::Request::Batch(InternalRaftBatch {
                requests: vec![InternalRaftRequest {
                    header: None,
                    request: Some(internal_raft_request::Request::Txn(nest(MAX_TXN_DEPTH))),
                }],
            })),
        };
        let entry = LogEntry {
            log_id: None,
            payload: Some(log_entry::Payload::Normal(cmd.clone())),
        };
        let bytes = entry.encode_to_vec();
        assert!(LogEntry::decode(bytes.as_slice()).is_err());
        let back = LogEntry::decode_nested(&bytes, Deep::Refuse).unwrap();
        assert_eq!(back, entry);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [
            &[0x12, 0x05, 0x22][..],
            &[0x12, 0xff],
            &[0xff; 12],
            &[0x0b, 0x0c],
        ] {
            assert!(TxnRequest::decode_nested(bytes, Deep::Truncate).is_err());
        }
    }
}
