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
}

/// The messages of a request body, each decoded as soon as its last byte arrives. A value
/// that does not decode, or one longer than `limit`, ends the stream with its error.
pub fn requests<T>(body: Body, limit: usize) -> BoxStream<'static, Result<T, Status>>
where
    T: DeserializeOwned + Send + 'static,
{
    let state = Reading {
        body: body.into_data_stream(),
        buf: Vec::new(),
        done: false,
        limit,
    };
    stream::unfold(Some(state), |state| async move {
        let mut s = state?;
        loop {
            let start = s
                .buf
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(s.buf.len());
            s.buf.drain(..start);
            if !s.buf.is_empty() {
                let mut values = serde_json::Deserializer::from_slice(&s.buf).into_iter::<T>();
                match values.next() {
                    Some(Ok(msg)) => {
                        let used = values.byte_offset();
                        s.buf.drain(..used);
                        return Some((Ok(msg), Some(s)));
                    }
                    Some(Err(e)) if e.is_eof() && !s.done => {}
                    Some(Err(e)) => return Some((Err(json::bad_body(&e, Code::Unknown)), None)),
                    None => {}
                }
            }
            if s.done {
                return None;
            }
            if s.buf.len() > s.limit {
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
/// while it runs, and a later one that does not decode just closes the sending side.
pub async fn inbound<T>(
    body: Body,
    limit: usize,
) -> Result<BoxStream<'static, Result<T, Status>>, Status>
where
    T: DeserializeOwned + Send + 'static,
{
    let mut reqs = requests::<T>(body, limit);
    match reqs.next().await {
        None => Ok(stream::empty().boxed()),
        Some(Err(status)) => Err(status),
        Some(Ok(first)) => {
            let rest = reqs.take_while(|r| futures::future::ready(r.is_ok()));
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
        ]);
        let got: Vec<_> = requests::<WatchRequest>(body, 1 << 20).collect().await;
        assert_eq!(got.len(), 3, "{got:?}");
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
    }
}
