//! The gateway's streams: a request body read as JSON messages one after another while it
//! arrives (watch, lease keep-alive), and a stream of answers written as grpc-gateway
//! writes them: one `{"result":…}` line per message, a `{"error":…}` line for the status
//! that ends it.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Code, Status};

use super::json;
use crate::api::transport::GatewayCall;

struct Reading {
    body: axum::body::BodyDataStream,
    buf: Vec<u8>,
    done: bool,
    limit: usize,
    scan: Scan,
}

/// How far the next JSON object has been scanned: each byte is looked at once, and
/// serde_json is called only when the object is complete (parsing the growing buffer
/// again at every chunk would cost quadratic time on a slow sender).
#[derive(Default)]
struct Scan {
    at: usize,
    depth: usize,
    in_str: bool,
    escaped: bool,
}

impl Scan {
    /// The length of the object starting at `buf[0]` (a `{`), once it is all there.
    fn complete(&mut self, buf: &[u8]) -> Option<usize> {
        while self.at < buf.len() {
            let b = buf[self.at];
            self.at += 1;
            if self.in_str {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_str = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => self.in_str = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        return Some(self.at);
                    }
                }
                _ => {}
            }
        }
        None
    }
}

/// The messages of a request body, each decoded as soon as its last byte arrives. A value
/// that does not decode ends the stream with its error (Unknown); a message over gRPC's
/// limit (`limit`, on the message the JSON encodes) with ResourceExhausted.
pub fn requests<T>(body: Body, limit: usize) -> BoxStream<'static, Result<T, Status>>
where
    T: DeserializeOwned + prost::Message + Send + 'static,
{
    let state = Reading {
        body: body.into_data_stream(),
        buf: Vec::new(),
        done: false,
        limit,
        scan: Scan::default(),
    };
    stream::unfold(Some(state), |state| async move {
        let mut s = state?;
        loop {
            if s.scan.at == 0 {
                let start = s
                    .buf
                    .iter()
                    .position(|b| !b.is_ascii_whitespace())
                    .unwrap_or(s.buf.len());
                s.buf.drain(..start);
            }
            // anything but an object is refused as soon as it starts (Go's decoder does
            // not take one into a message either)
            let whole = match s.buf.first() {
                Some(b'{') => s.scan.complete(&s.buf),
                Some(_) => Some(s.buf.len()),
                None => None,
            };
            let ended = s.done && !s.buf.is_empty();
            if let Some(n) = whole.or(ended.then_some(s.buf.len())) {
                let decoded = serde_json::from_slice::<T>(&s.buf[..n]);
                s.buf.drain(..n);
                s.scan = Scan::default();
                return Some(match decoded {
                    Ok(msg) if msg.encoded_len() > s.limit => {
                        let status = Status::resource_exhausted(format!(
                            "grpc: received message larger than max ({} vs. {})",
                            msg.encoded_len(),
                            s.limit
                        ));
                        (Err(status), None)
                    }
                    Ok(msg) => (Ok(msg), Some(s)),
                    Err(e) => (Err(json::bad_body(&e, Code::Unknown)), None),
                });
            }
            if s.done {
                return None;
            }
            // JSON is longer than the message it encodes (base64 by a third)
            if s.buf.len() > s.limit.saturating_mul(2) {
                let status = Status::resource_exhausted(format!(
                    "grpc: received message larger than max ({} vs. {})",
                    s.buf.len(),
                    s.limit
                ));
                return Some((Err(status), None));
            }
            match s.body.next().await {
                Some(Ok(data)) => s.buf.extend_from_slice(&data),
                Some(Err(_)) | None => s.done = true,
            }
        }
    })
    .boxed()
}

/// A bidirectional call's requests as grpc-gateway sends them on: the first message is
/// read before the call (one that does not decode fails the call, with Unknown), the rest
/// while it runs; a later one that does not decode just closes the sending side, one over
/// gRPC's limit ends the call with ResourceExhausted, as the server's read would.
pub async fn inbound<T>(
    body: Body,
    limit: usize,
) -> Result<BoxStream<'static, Result<T, Status>>, Status>
where
    T: DeserializeOwned + prost::Message + Send + 'static,
{
    let mut reqs = requests::<T>(body, limit);
    match reqs.next().await {
        None => Ok(stream::empty().boxed()),
        Some(Err(status)) => Err(status),
        Some(Ok(first)) => {
            let rest = reqs.take_while(|r| {
                let decode_failed = r.as_ref().is_err_and(|s| s.code() == Code::Unknown);
                futures::future::ready(!decode_failed)
            });
            Ok(stream::once(async move { Ok(first) }).chain(rest).boxed())
        }
    }
}

/// A call's answers, counted as its gRPC call: handled with the code of the status that
/// ends it, OK at its end, Canceled if the client goes away first.
pub fn counted<T>(
    answers: BoxStream<'static, Result<T, Status>>,
    call: GatewayCall,
) -> BoxStream<'static, Result<T, Status>>
where
    T: Send + 'static,
{
    stream::unfold((answers, call), |(mut answers, mut call)| async move {
        match answers.next().await {
            Some(Err(status)) => {
                call.finish(status.code());
                Some((Err(status), (answers, call)))
            }
            Some(Ok(msg)) => Some((Ok(msg), (answers, call))),
            None => {
                call.finish(Code::Ok);
                None
            }
        }
    })
    .boxed()
}

/// The answer to a streaming call. Nothing is written before its first item, so a call
/// that fails at once answers with its status's HTTP code, as grpc-gateway's does.
pub async fn respond<T>(mut answers: BoxStream<'static, Result<T, Status>>) -> Response
where
    T: Serialize + Send + 'static,
{
    let first = answers.next().await;
    let status = match &first {
        Some(Err(status)) => json::http_status(status.code()),
        _ => axum::http::StatusCode::OK,
    };
    let Some(first) = first else {
        let mut resp = json::with_json(status, Body::empty());
        json::forwarded_metadata(&mut resp);
        return resp;
    };
    let ended = first.is_err();
    let rest = if ended {
        stream::empty().boxed()
    } else {
        // Everything up to and including the first error.
        answers
            .scan(false, |ended, item| {
                let next = (!*ended).then(|| {
                    *ended = item.is_err();
                    item
                });
                futures::future::ready(next)
            })
            .boxed()
    };
    let chunks = stream::once(async move { first })
        .chain(rest)
        .map(|item| Ok::<_, std::convert::Infallible>(Bytes::from(json::chunk(item))));
    let mut resp = json::with_json(status, Body::from_stream(chunks));
    json::forwarded_metadata(&mut resp);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::WatchRequest;

    fn body_of(parts: &[&'static str]) -> Body {
        let chunks: Vec<Result<Bytes, std::io::Error>> = parts
            .iter()
            .map(|p| Ok(Bytes::from_static(p.as_bytes())))
            .collect();
        Body::from_stream(stream::iter(chunks))
    }

    #[tokio::test]
    async fn messages_split_across_chunks_decode_in_order() {
        let body = body_of(&[
            r#"{"create_request":{"key":"Zm"#,
            r#"9v"}} {"progress_request":{}}"#,
            "\n{\"cancel_request\":{\"watch_id\":\"3\"}}",
            // braces and an escaped quote inside a string (an unknown field, skipped)
            r#" {"note":"a\"}{[","#,
            r#""progress_request":{}}"#,
        ]);
        let got: Vec<_> = requests::<WatchRequest>(body, 1 << 20).collect().await;
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(got.iter().all(Result::is_ok));
    }

    #[tokio::test]
    async fn a_bad_first_message_fails_and_a_later_one_closes() {
        let Err(status) = inbound::<WatchRequest>(body_of(&["{bad"]), 1 << 20).await else {
            panic!("a bad first message fails the call")
        };
        assert_eq!(status.code(), Code::Unknown);
        let reqs = inbound::<WatchRequest>(body_of(&[r#"{"progress_request":{}} {bad"#]), 1 << 20)
            .await
            .unwrap();
        let got: Vec<_> = reqs.collect().await;
        assert_eq!(got.len(), 1);
        let empty = inbound::<WatchRequest>(body_of(&["  "]), 1 << 20)
            .await
            .unwrap();
        assert_eq!(empty.count().await, 0);
        let big = requests::<WatchRequest>(
            body_of(&[
                r#"{"create_request":{"key":"#,
                "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            ]),
            16,
        );
        let got: Vec<_> = big.collect().await;
        assert_eq!(got[0].as_ref().unwrap_err().code(), Code::ResourceExhausted);
        // the message's own size is held to the limit, as gRPC's read holds it
        let over = requests::<WatchRequest>(
            body_of(&[r#"{"create_request":{"key":"QUFBQUFBQUFBQUFBQUFBQUFB"}}"#]),
            16,
        );
        let got: Vec<_> = over.collect().await;
        assert_eq!(got[0].as_ref().unwrap_err().code(), Code::ResourceExhausted);
    }

    /// Seeded random bodies: valid messages cut into random chunks decode as they do whole,
    /// and mutated bytes (flips, cuts, stray braces and quotes) end in a message or an
    /// error, never a panic or a hang.
    #[tokio::test]
    async fn random_bodies_and_random_chunking() {
        use rand::{Rng, SeedableRng};
        let seed: u64 = rand::random();
        eprintln!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let valid = [
            r#"{"create_request":{"key":"Zm9v","range_end":"Zm9w","prev_kv":true,"filters":["NOPUT"]}}"#,
            r#"{"progress_request":{}}"#,
            r#"{"cancel_request":{"watch_id":"7"},"note":"a\"}{[\\"}"#,
        ];
        for _ in 0..2000 {
            let picks: Vec<&str> = (0..rng.gen_range(1..4))
                .map(|_| valid[rng.gen_range(0..valid.len())])
                .collect();
            let mut bytes = picks.join(" ").into_bytes();
            let mutate = rng.gen_bool(0.5);
            if mutate {
                for _ in 0..rng.gen_range(1..4) {
                    let i = rng.gen_range(0..bytes.len());
                    match rng.gen_range(0..4) {
                        0 => bytes[i] = rng.gen(),
                        1 => bytes.truncate(i),
                        2 => bytes.insert(i, b'{'),
                        _ => bytes.insert(i, b'"'),
                    }
                    if bytes.is_empty() {
                        break;
                    }
                }
            }
            let mut chunks = Vec::new();
            let mut rest = bytes.as_slice();
            while !rest.is_empty() {
                let n = rng.gen_range(1..=rest.len().min(17));
                chunks.push(Ok::<_, std::io::Error>(Bytes::copy_from_slice(&rest[..n])));
                rest = &rest[n..];
            }
            let body = Body::from_stream(stream::iter(chunks));
            let got = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                requests::<WatchRequest>(body, 1 << 20).collect::<Vec<_>>(),
            )
            .await
            .expect("the body's messages end");
            if !mutate {
                let want: Vec<WatchRequest> = picks
                    .iter()
                    .map(|p| serde_json::from_str(p).unwrap())
                    .collect();
                let got: Vec<WatchRequest> = got.into_iter().map(Result::unwrap).collect();
                assert_eq!(got, want, "seed {seed}");
            } else if let Some(pos) = got.iter().position(Result::is_err) {
                assert_eq!(pos, got.len() - 1, "an error ends the stream (seed {seed})");
            }
        }
    }
}
