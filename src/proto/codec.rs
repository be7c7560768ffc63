//! The gRPC codec of every generated service and client: prost's, except that txns are
//! decoded by [`super::nested`] (any depth etcd accepts), and that a message that does
//! not decode gets grpc-go's status, never the decoder's internals.

use std::any::{Any, TypeId};
use std::marker::PhantomData;

use bytes::{Buf, Bytes};
use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::ProstEncoder;

use super::etcdserverpb::{TxnRequest, TxnResponse};
use super::nested::{DecodeNested, Deep};

/// grpc-go's status for a request that does not unmarshal (etcd sends it with Go's
/// protobuf error appended, which no other decoder could reproduce).
pub const UNMARSHAL_FAILED: &str = "grpc: failed to unmarshal the received message";

#[derive(Debug, Clone)]
pub struct EtcdCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for EtcdCodec<T, U> {
    fn default() -> Self {
        EtcdCodec(PhantomData)
    }
}

impl<T, U> Codec for EtcdCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = EtcdDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        EtcdDecoder(PhantomData)
    }
}

#[derive(Debug)]
pub struct EtcdDecoder<U>(PhantomData<U>);

impl<U: Message + Default + 'static> Decoder for EtcdDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let unmarshal = |_| Status::internal(UNMARSHAL_FAILED);
        // The message is copied into a buffer of its own before decoding: decoded `bytes`
        // fields are slices of what they were decoded from, and a slice of tonic's receive
        // buffer would keep all of that buffer alive for as long as a key, a value or an
        // event of this request is held (the log's in-memory tail, the watch path).
        let bytes = Bytes::copy_from_slice(&buf.copy_to_bytes(buf.remaining()));
        // prost first (faster, and the same message within its recursion limit); the
        // nested walker for what prost refuses.
        let nested: Option<Box<dyn Any>> = if TypeId::of::<U>() == TypeId::of::<TxnRequest>() {
            Some(Box::new(match TxnRequest::decode(bytes.clone()) {
                Ok(t) => t,
                Err(_) => TxnRequest::decode_nested(&bytes, Deep::Truncate).map_err(unmarshal)?,
            }))
        } else if TypeId::of::<U>() == TypeId::of::<TxnResponse>() {
            Some(Box::new(match TxnResponse::decode(bytes.clone()) {
                Ok(t) => t,
                Err(_) => TxnResponse::decode_nested(&bytes, Deep::Refuse).map_err(unmarshal)?,
            }))
        } else {
            None
        };
        match nested {
            Some(any) => Ok(Some(*any.downcast::<U>().expect("the TypeId matched"))),
            None => U::decode(bytes)
                .map(Some)
                .map_err(|_| Status::internal(UNMARSHAL_FAILED)),
        }
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}
