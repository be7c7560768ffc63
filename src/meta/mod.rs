//! Typed cluster metadata on etcd's public KV, Watch and Lease API (layer `meta`).
//!
//! Each namespace is a key prefix under one configurable root, with a typed record, its
//! codec, validation and write helpers built on `Txn` compare-and-swap:
//! - [`resource_group`]: resource groups per keyspace, controller config, service limits;
//! - [`drain`]: node liveness, one drain record per cluster with a monotonic epoch;
//! - [`region`]: regions, stores and the key-to-region index;
//! - [`watcher`]: a local cache of a namespace with revision-safe startup and resume.
//!
//! The layer speaks only through [`Client`] (etcd-client), so it works the same against an
//! embedded metastore and any etcd endpoint. It never imports the server, raft, MVCC or
//! storage layers. `docs/metadata.md` lists every key, its encoding and who writes it.
//!
//! Errors: transport and decoding failures are [`Error`]. Expected refusals (a group that
//! exists, a stale epoch, a drain conflict) are values: each namespace returns
//! `Result<std::result::Result<T, Refusal>>` with its own `Refusal` enum.

/// Unwrap an `Outcome`, or return its refusal from the enclosing
/// `fn .. -> Result<Outcome<T>>`.
macro_rules! accept {
    ($outcome:expr) => {
        match $outcome {
            Ok(value) => value,
            Err(refusal) => return Ok(Err(refusal)),
        }
    };
}

pub mod drain;
pub mod region;
pub mod resource_group;
pub mod watcher;

pub use etcd_client::Client;
use etcd_client::{Compare, CompareOp, KeyValue, Txn, TxnOp, TxnOpResponse};

/// Where the metadata lives: every namespace under one root prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: String,
}

impl Layout {
    /// The root used when none is configured.
    pub const DEFAULT_ROOT: &'static str = "/metastore/meta";

    /// A layout under `root` (a trailing `/` is dropped).
    pub fn new(root: impl Into<String>) -> Self {
        let mut root = root.into();
        while root.ends_with('/') {
            root.pop();
        }
        Layout { root }
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    /// The prefix of one namespace: `{root}/{namespace}/`.
    pub fn namespace(&self, namespace: &str) -> String {
        format!("{}/{}/", self.root, namespace)
    }
}

impl Default for Layout {
    fn default() -> Self {
        Layout::new(Self::DEFAULT_ROOT)
    }
}

/// Failures of the transport or of the stored data (never an expected refusal).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("cannot decode {key}: {reason}")]
    Decode { key: String, reason: String },
    #[error("invalid: {0}")]
    Invalid(String),
}

impl Error {
    /// Whether the store could not serve the request for want of a leader (or at all).
    /// `Cancelled` counts: this layer never cancels its own calls, so a cancelled one is a
    /// connection that closed under it (a store stopping mid-request).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Etcd(etcd_client::Error::GRpcStatus(s)) => {
                matches!(s.code(), tonic::Code::Unavailable | tonic::Code::Cancelled)
            }
            Error::Etcd(etcd_client::Error::TransportError(_)) => true,
            _ => false,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Decode a stored JSON record, naming the key when it is not one.
pub fn decode_json<T: serde::de::DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T> {
    serde_json::from_slice(value).map_err(|e| Error::Decode {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

/// How often a read-modify-write is tried before it gives up on a contended key.
pub(crate) const MAX_ATTEMPTS: usize = 16;

/// Encode a record as JSON (every metadata record is plain data and always encodes).
pub(crate) fn encode_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("metadata records encode to JSON")
}

/// Decode the JSON record of a key read with [`read_keys`], if it is there.
pub(crate) fn decode_kv<T: serde::de::DeserializeOwned>(
    kv: &Option<KeyValue>,
) -> Result<Option<T>> {
    kv.as_ref()
        .map(|kv| decode_json(kv.key(), kv.value()))
        .transpose()
}

/// Read `keys` at one revision (a `Txn` of gets only).
pub(crate) async fn read_keys(client: &Client, keys: &[&str]) -> Result<Vec<Option<KeyValue>>> {
    let gets: Vec<TxnOp> = keys.iter().map(|k| TxnOp::get(*k, None)).collect();
    let resp = client.clone().txn(Txn::new().and_then(gets)).await?;
    Ok(resp
        .op_responses()
        .into_iter()
        .map(|r| match r {
            TxnOpResponse::Get(mut g) => g.take_kvs().into_iter().next(),
            _ => None,
        })
        .collect())
}

/// A compare that holds while `key` is as it was read (`None`: still absent).
pub(crate) fn unchanged(key: &str, read: &Option<KeyValue>) -> Compare {
    unchanged_since(key, read.as_ref().map_or(0, |kv| kv.mod_revision()))
}

/// A compare that holds while `key` still has `mod_revision` (0: still absent).
pub(crate) fn unchanged_since(key: &str, mod_revision: i64) -> Compare {
    if mod_revision == 0 {
        Compare::version(key, CompareOp::Equal, 0)
    } else {
        Compare::mod_revision(key, CompareOp::Equal, mod_revision)
    }
}

/// Run a transaction; whether its compares held.
pub(crate) async fn commit(
    client: &Client,
    compares: Vec<Compare>,
    ops: Vec<TxnOp>,
) -> Result<bool> {
    let txn = Txn::new().when(compares).and_then(ops);
    Ok(client.clone().txn(txn).await?.succeeded())
}

/// The key after every key that starts with `prefix` (etcd's `GetPrefixRangeEnd`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // every byte was 0xff: the range runs to the end of the key space
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_connection_is_unavailable() {
        let status = |s: tonic::Status| Error::Etcd(etcd_client::Error::GRpcStatus(s));
        // what etcd-client returns when the store's connection closes mid-request
        assert!(status(tonic::Status::cancelled("operation was canceled")).is_unavailable());
        assert!(status(tonic::Status::unavailable("etcdserver: no leader")).is_unavailable());
        assert!(!status(tonic::Status::invalid_argument("bad")).is_unavailable());
        assert!(!Error::Invalid("x".into()).is_unavailable());
    }

    #[test]
    fn layout_and_prefix_end() {
        let l = Layout::new("/root/");
        assert_eq!(l.namespace("region"), "/root/region/");
        assert_eq!(prefix_end(b"a/"), b"a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }
}
