//! Requests below the client libraries: gRPC calls with any bytes as the message (so a
//! scenario can send what no client would encode), streams the test drives message by
//! message, and plain HTTP/1.1 requests written by hand.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, BufMut};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::Status;

/// Messages as the bytes they are.
#[derive(Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
    }
}

pub async fn channel(endpoint: &str) -> Channel {
    Channel::from_shared(endpoint.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// `status` as an observation: its code, and its message (or only its start, for what
/// carries a decoder's own words).
pub fn status_obs(s: &Status) -> String {
    let msg = s.message();
    // grpc-go appends Go's protobuf error, which no other decoder words the same
    let msg = [
        "grpc: failed to unmarshal the received message",
        "grpc: error unmarshalling request",
    ]
    .into_iter()
    .find(|p| msg.starts_with(p))
    .map(|p| format!("{p} …"))
    .unwrap_or_else(|| msg.to_string());
    format!("error {:?}: {msg}", s.code())
}

/// One unary call of `method` (e.g. "/etcdserverpb.KV/Put") with `body` as the message and
/// `headers` as extra metadata.
pub async fn unary_with(
    ch: &Channel,
    method: &'static str,
    body: Vec<u8>,
    headers: &[(&'static str, String)],
) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(ch.clone())
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    grpc.ready()
        .await
        .map_err(|e| Status::unknown(format!("not ready: {e}")))?;
    let mut req = tonic::Request::new(body);
    for (k, v) in headers {
        req.metadata_mut()
            .insert(*k, MetadataValue::try_from(v.as_str()).unwrap());
    }
    let path = http::uri::PathAndQuery::from_static(method);
    grpc.unary(req, path, RawCodec)
        .await
        .map(|r| r.into_inner())
}

pub async fn unary(ch: &Channel, method: &'static str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    unary_with(ch, method, body, &[]).await
}

/// A unary call's answer as an observation: the response decoded as `M` and normalised
/// (ids and raft term zeroed), or the error.
pub fn obs<M: Message + Default + std::fmt::Debug>(r: &Result<Vec<u8>, Status>) -> String {
    match r {
        Ok(bytes) => match M::decode(bytes.as_slice()) {
            Ok(m) => crate::common::normalize_debug(&format!("{m:?}")),
            Err(e) => format!("undecodable answer: {e}"),
        },
        Err(s) => status_obs(s),
    }
}

/// A bidirectional stream: the handle to send on (drop it to half-close) and the answers.
pub struct Bidi {
    pub tx: Option<tokio::sync::mpsc::Sender<Vec<u8>>>,
    pub rx: tonic::Streaming<Vec<u8>>,
}

/// Open a stream whose first message is `first` (grpc-go answers with headers only once
/// it has something to send, so the stream cannot wait for them before its first message).
pub async fn bidi(ch: &Channel, method: &'static str, first: Vec<u8>) -> Result<Bidi, Status> {
    let mut grpc = tonic::client::Grpc::new(ch.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unknown(format!("not ready: {e}")))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    tx.send(first).await.unwrap();
    let out = tokio_stream::wrappers::ReceiverStream::new(rx);
    let path = http::uri::PathAndQuery::from_static(method);
    let resp = grpc
        .streaming(tonic::Request::new(out), path, RawCodec)
        .await?;
    Ok(Bidi {
        tx: Some(tx),
        rx: resp.into_inner(),
    })
}

impl Bidi {
    pub async fn send(&self, msg: Vec<u8>) {
        self.tx
            .as_ref()
            .expect("not half-closed")
            .send(msg)
            .await
            .unwrap();
    }

    /// The next answer within `wait`: a message, the end of the stream (`Ok(None)`), its
    /// error, or `None` for nothing in time.
    pub async fn next(&mut self, wait: Duration) -> Option<Result<Option<Vec<u8>>, Status>> {
        tokio::time::timeout(wait, self.rx.message()).await.ok()
    }
}

/// A plain HTTP/1.1 request written to the endpoint's socket: the status line, the
/// content type and the body of the answer.
pub fn http1(endpoint: &str, request: &str) -> String {
    let addr = endpoint.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = request.replace("{HOST}", addr);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or("(no answer)").to_string();
    let ctype = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    // a chunked body's framing is the server's business; keep the text
    let body: String = body.chars().take(200).collect();
    format!("{status} | content-type: {ctype} | body: {body:?}")
}
