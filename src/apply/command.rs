//! The replicated command: etcd's InternalRaftRequest in our own protobuf envelope
//! (proto/metastorepb/raft_internal.proto), and its outcome [`Applied`].
//!
//! To ensure correctness:
//! - what goes into the log is `FORMAT_VERSION` followed by the protobuf encoding of an
//!   [`InternalRaftRequest`]; a reader refuses any other version rather than guess;
//! - the encoding of every kind is pinned by a golden test (`raft::codec`), so a format
//!   change is always deliberate;
//! - openraft needs its command type to be serde-serialisable: that impl writes the same
//!   versioned protobuf bytes, so nothing else ever sees a serde encoding of a proto type.

use prost::Message;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::proto::metastorepb::internal_raft_request::Request;
use crate::proto::metastorepb::internal_raft_response::Response as PbResponse;
pub use crate::proto::metastorepb::InternalRaftRequest as Command;
use crate::proto::metastorepb::{
    Empty, InternalRaftBatch, InternalRaftResponse, InternalRaftResponses, Refusal as PbRefusal,
    RequestHeader,
};

use super::{Applied, Refusal};
use crate::auth::Error as AuthError;
use crate::proto::nested::{DecodeNested, Deep, NestedError};

/// The first byte of every stored command, log entry and snapshot: the format they are in.
pub const FORMAT_VERSION: u8 = 1;

/// A stored value could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("empty record")]
    Empty,
    #[error("format version {found} is not one this build reads (it reads {FORMAT_VERSION})")]
    Version { found: u8 },
    #[error("corrupt record: {0}")]
    Proto(#[from] prost::DecodeError),
    #[error("corrupt record: {0}")]
    Nested(#[from] NestedError),
}

/// The same for a message that can hold nested txns: read at any depth the request
/// checks admit (prost alone stops at about 50 levels, and a committed txn that failed to
/// decode from the log would stop the member).
/// prost's own decoder goes first (it is the faster one, and for a message within its
/// recursion limit both give the same message); the nested walker reads what prost refuses.
pub fn decode_versioned_nested<M: DecodeNested + Message + Default>(
    bytes: &[u8],
) -> Result<M, DecodeError> {
    match bytes.split_first() {
        None => Err(DecodeError::Empty),
        Some((&FORMAT_VERSION, rest)) => match M::decode(rest) {
            Ok(m) => Ok(m),
            Err(_) => Ok(M::decode_nested(rest, Deep::Refuse)?),
        },
        Some((&found, _)) => Err(DecodeError::Version { found }),
    }
}

/// `FORMAT_VERSION` followed by `msg`'s protobuf encoding.
pub fn encode_versioned(msg: &impl Message) -> Vec<u8> {
    let mut buf = Vec::with_capacity(1 + msg.encoded_len());
    buf.push(FORMAT_VERSION);
    msg.encode(&mut buf).expect("a Vec grows as needed");
    buf
}

/// The message behind a `FORMAT_VERSION` byte.
pub fn decode_versioned<M: Message + Default>(bytes: &[u8]) -> Result<M, DecodeError> {
    match bytes.split_first() {
        None => Err(DecodeError::Empty),
        Some((&FORMAT_VERSION, rest)) => Ok(M::decode(rest)?),
        Some((&found, _)) => Err(DecodeError::Version { found }),
    }
}

impl Command {
    /// A command with request id `id` and no authenticated user.
    pub fn new(id: u64, request: Request) -> Self {
        Command {
            header: Some(RequestHeader {
                id,
                username: String::new(),
                auth_revision: 0,
            }),
            request: Some(request),
        }
    }

    /// Commands that waited together, to ride one log entry.
    pub fn batch(requests: Vec<Command>) -> Self {
        Command {
            header: None,
            request: Some(Request::Batch(InternalRaftBatch { requests })),
        }
    }
}

impl Serialize for Command {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&encode_versioned(self))
    }
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = serde_bytes_buf(d)?;
        decode_versioned_nested(&bytes).map_err(serde::de::Error::custom)
    }
}

fn serde_bytes_buf<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("bytes")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::new();
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }
    d.deserialize_byte_buf(V)
}

impl From<Refusal> for PbRefusal {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Compacted => PbRefusal::Compacted,
            Refusal::FutureRev => PbRefusal::FutureRev,
            Refusal::KeyNotFound => PbRefusal::KeyNotFound,
            Refusal::LeaseNotFound => PbRefusal::LeaseNotFound,
            Refusal::LeaseExists => PbRefusal::LeaseExists,
            Refusal::LeaseTtlTooLarge => PbRefusal::LeaseTtlTooLarge,
            Refusal::NoSpace => PbRefusal::NoSpace,
            Refusal::Corrupt => PbRefusal::Corrupt,
            Refusal::Auth(e) => auth_refusal(e),
        }
    }
}

/// Each auth error's place in the log's refusal enum, both ways.
const AUTH_REFUSALS: &[(AuthError, PbRefusal)] = &[
    (AuthError::RootUserNotExist, PbRefusal::RootUserNotExist),
    (AuthError::RootRoleNotExist, PbRefusal::RootRoleNotExist),
    (AuthError::UserAlreadyExist, PbRefusal::UserAlreadyExist),
    (AuthError::UserEmpty, PbRefusal::UserEmpty),
    (AuthError::UserNotFound, PbRefusal::UserNotFound),
    (AuthError::RoleAlreadyExist, PbRefusal::RoleAlreadyExist),
    (AuthError::RoleNotFound, PbRefusal::RoleNotFound),
    (AuthError::RoleEmpty, PbRefusal::RoleEmpty),
    (AuthError::AuthFailed, PbRefusal::AuthFailed),
    (AuthError::PermissionDenied, PbRefusal::PermissionDenied),
    (AuthError::RoleNotGranted, PbRefusal::RoleNotGranted),
    (
        AuthError::PermissionNotGranted,
        PbRefusal::PermissionNotGranted,
    ),
    (AuthError::AuthNotEnabled, PbRefusal::AuthNotEnabled),
    (AuthError::InvalidAuthToken, PbRefusal::InvalidAuthToken),
    (AuthError::InvalidAuthMgmt, PbRefusal::InvalidAuthMgmt),
    (AuthError::AuthOldRevision, PbRefusal::AuthOldRevision),
    (AuthError::PermissionNotGiven, PbRefusal::PermissionNotGiven),
    (AuthError::NoPasswordUser, PbRefusal::NoPasswordUser),
];

fn auth_refusal(e: AuthError) -> PbRefusal {
    // every auth error has a row (checked by a test below)
    AUTH_REFUSALS
        .iter()
        .find(|(a, _)| *a == e)
        .map_or(PbRefusal::Unspecified, |(_, p)| *p)
}

impl TryFrom<PbRefusal> for Refusal {
    type Error = String;
    fn try_from(r: PbRefusal) -> Result<Self, String> {
        Ok(match r {
            PbRefusal::Compacted => Refusal::Compacted,
            PbRefusal::FutureRev => Refusal::FutureRev,
            PbRefusal::KeyNotFound => Refusal::KeyNotFound,
            PbRefusal::LeaseNotFound => Refusal::LeaseNotFound,
            PbRefusal::LeaseExists => Refusal::LeaseExists,
            PbRefusal::LeaseTtlTooLarge => Refusal::LeaseTtlTooLarge,
            PbRefusal::NoSpace => Refusal::NoSpace,
            PbRefusal::Corrupt => Refusal::Corrupt,
            PbRefusal::Unspecified => return Err("unspecified refusal".into()),
            other => Refusal::Auth(
                AUTH_REFUSALS
                    .iter()
                    .find(|(_, p)| *p == other)
                    .map(|(a, _)| *a)
                    .ok_or("unknown refusal")?,
            ),
        })
    }
}

impl From<Applied> for InternalRaftResponse {
    fn from(a: Applied) -> Self {
        let response = match a {
            Applied::None => PbResponse::None(Empty {}),
            Applied::Put(r) => PbResponse::Put(r),
            Applied::DeleteRange(r) => PbResponse::DeleteRange(r),
            Applied::Txn(r) => PbResponse::Txn(r),
            Applied::Compaction(r) => PbResponse::Compaction(r),
            Applied::LeaseGrant(r) => PbResponse::LeaseGrant(r),
            Applied::LeaseRevoke(r) => PbResponse::LeaseRevoke(r),
            Applied::Alarm(r) => PbResponse::Alarm(r),
            Applied::Refused(r) => PbResponse::Refused(PbRefusal::from(r).into()),
            Applied::Batch(all) => PbResponse::Batch(InternalRaftResponses {
                responses: all.into_iter().map(Into::into).collect(),
            }),
        };
        InternalRaftResponse {
            response: Some(response),
        }
    }
}

impl TryFrom<InternalRaftResponse> for Applied {
    type Error = String;
    fn try_from(r: InternalRaftResponse) -> Result<Self, String> {
        Ok(match r.response.ok_or("a response with no outcome")? {
            PbResponse::None(_) => Applied::None,
            PbResponse::Put(r) => Applied::Put(r),
            PbResponse::DeleteRange(r) => Applied::DeleteRange(r),
            PbResponse::Txn(r) => Applied::Txn(r),
            PbResponse::Compaction(r) => Applied::Compaction(r),
            PbResponse::LeaseGrant(r) => Applied::LeaseGrant(r),
            PbResponse::LeaseRevoke(r) => Applied::LeaseRevoke(r),
            PbResponse::Alarm(r) => Applied::Alarm(r),
            PbResponse::Refused(code) => {
                let pb = PbRefusal::try_from(code).map_err(|e| e.to_string())?;
                Applied::Refused(Refusal::try_from(pb)?)
            }
            PbResponse::Batch(b) => Applied::Batch(
                b.responses
                    .into_iter()
                    .map(Applied::try_from)
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
}

// openraft wants its response type serialisable too: the same versioned protobuf.
impl Serialize for Applied {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&encode_versioned(&InternalRaftResponse::from(self.clone())))
    }
}

impl<'de> Deserialize<'de> for Applied {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = serde_bytes_buf(d)?;
        let pb: InternalRaftResponse =
            decode_versioned_nested(&bytes).map_err(serde::de::Error::custom)?;
        Applied::try_from(pb).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::{PutRequest, PutResponse, ResponseHeader};

    #[test]
    fn a_command_goes_through_serde_as_its_versioned_protobuf() {
        let cmd = Command::new(
            7,
            Request::Put(PutRequest {
                key: "k".into(),
                value: "v".into(),
                ..Default::default()
            }),
        );
        let via_serde = bincode::serialize(&cmd).unwrap();
        // bincode writes a u64 length, then the bytes as they are.
        assert_eq!(&via_serde[8..], encode_versioned(&cmd).as_slice());
        let back: Command = bincode::deserialize(&via_serde).unwrap();
        assert_eq!(back, cmd);
    }

    #[test]
    fn every_auth_error_has_its_own_refusal() {
        let all = [
            AuthError::RootUserNotExist,
            AuthError::RootRoleNotExist,
            AuthError::UserAlreadyExist,
            AuthError::UserEmpty,
            AuthError::UserNotFound,
            AuthError::RoleAlreadyExist,
            AuthError::RoleNotFound,
            AuthError::RoleEmpty,
            AuthError::AuthFailed,
            AuthError::PermissionDenied,
            AuthError::RoleNotGranted,
            AuthError::PermissionNotGranted,
            AuthError::AuthNotEnabled,
            AuthError::InvalidAuthToken,
            AuthError::InvalidAuthMgmt,
            AuthError::AuthOldRevision,
            AuthError::PermissionNotGiven,
            AuthError::NoPasswordUser,
        ];
        let mut seen = std::collections::HashSet::new();
        for e in all {
            let pb = PbRefusal::from(Refusal::Auth(e));
            assert_ne!(pb, PbRefusal::Unspecified, "{e:?}");
            assert!(seen.insert(pb as i32), "{e:?} shares a refusal");
            assert_eq!(Refusal::try_from(pb), Ok(Refusal::Auth(e)));
        }
    }

    #[test]
    fn another_format_version_is_refused() {
        let mut bytes = encode_versioned(&Command::batch(Vec::new()));
        bytes[0] = 2;
        assert!(matches!(
            decode_versioned::<Command>(&bytes),
            Err(DecodeError::Version { found: 2 })
        ));
        assert!(matches!(
            decode_versioned::<Command>(&[]),
            Err(DecodeError::Empty)
        ));
    }

    #[test]
    fn every_outcome_survives_the_response_encoding() {
        let outcomes = vec![
            Applied::None,
            Applied::Put(PutResponse {
                header: Some(ResponseHeader {
                    revision: 3,
                    ..Default::default()
                }),
                prev_kv: None,
            }),
            Applied::Refused(Refusal::NoSpace),
            Applied::Refused(Refusal::Corrupt),
            Applied::Refused(Refusal::Auth(AuthError::AuthOldRevision)),
            Applied::Batch(vec![Applied::Refused(Refusal::Compacted), Applied::None]),
        ];
        for a in outcomes {
            let bytes = bincode::serialize(&a).unwrap();
            let back: Applied = bincode::deserialize(&bytes).unwrap();
            assert_eq!(format!("{back:?}"), format!("{a:?}"));
        }
    }
}
