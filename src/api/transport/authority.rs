//! Accept HTTP/2 requests whose `:authority` is a URL, as real etcd does.
//!
//! For `etcdctl endpoint status|health` (etcd 3.4), grpc-go dials the target
//! `passthrough:///http://host:port`, so every request carries the pseudo-header
//! `:authority: http://host:port`. Go's HTTP/2 server takes that; the `h2` crate under
//! tonic finds it malformed and resets the stream with PROTOCOL_ERROR, and it has no
//! option to relax that check.
//!
//! So each accepted connection is wrapped in [`AuthorityFix`], which watches the bytes
//! h2 reads. Frames before the first header block go through as they arrive (grpc-go
//! sends no request until it has the server's SETTINGS, so nothing may be held back
//! until a request shows up). The first header block is decoded: if it is not HTTP/2, or
//! its `:authority` is one h2 accepts, the wrapper steps aside and h2 reads the socket
//! directly. Otherwise, every header block of that connection is HPACK-decoded and
//! re-encoded with `:authority` cut down to its `host[:port]`.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BufMut, BytesMut};

use http::uri::Authority;
use loona_hpack::{Decoder, Encoder};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use tonic::transport::server::Connected;

/// What an HTTP/2 client sends first.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEAD_LEN: usize = 9;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
/// Stream dependency (4 bytes) and weight (1 byte) of a HEADERS frame with PRIORITY.
const PRIORITY_LEN: usize = 5;
/// The smallest SETTINGS_MAX_FRAME_SIZE a peer may announce, so any peer takes it.
const MAX_FRAME_PAYLOAD: usize = 16_384;
/// The most bytes of one header block (all its frames) held while inspecting it;
/// far above what h2 accepts anyway (hyper's default header list limit is 16 KiB).
const MAX_HEADER_BLOCK: usize = 1 << 20;
const READ_CHUNK: usize = 16 * 1024;
const AUTHORITY: &[u8] = b":authority";

/// A client connection that rewrites URL-shaped `:authority` values h2 would reject.
pub struct AuthorityFix<S> {
    io: S,
    mode: Mode,
    /// Bytes read from `io` and not yet examined.
    raw: BytesMut,
    /// Examined (and possibly rewritten) bytes, handed out before anything else.
    ready: BytesMut,
}

enum Mode {
    /// Matching the client preface.
    Preface,
    /// Walking HTTP/2 frames.
    Frames(Frames),
    /// Done: hand out `ready`, then read `io` directly.
    Pass,
}

struct Frames {
    /// Bytes left of a frame that goes through unchanged.
    skip: usize,
    /// `None` until the first header block asks for rewriting.
    hpack: Option<Box<Hpack>>,
}

/// One decoder mirroring the client's encoder, one encoder that h2's decoder mirrors.
struct Hpack {
    decoder: Decoder<'static>,
    encoder: Encoder<'static>,
}

impl<S> AuthorityFix<S> {
    pub fn new(io: S) -> Self {
        Self {
            io,
            mode: Mode::Preface,
            raw: BytesMut::new(),
            ready: BytesMut::new(),
        }
    }

    /// Move what can be decided from `raw` to `ready`. `eof`: no more bytes will come.
    fn process(&mut self, eof: bool) -> io::Result<()> {
        loop {
            match &mut self.mode {
                Mode::Pass => {
                    self.ready.unsplit(self.raw.split());
                    return Ok(());
                }
                Mode::Preface => {
                    let n = self.raw.len().min(PREFACE.len());
                    if self.raw[..n] != PREFACE[..n] || (n < PREFACE.len() && eof) {
                        self.mode = Mode::Pass;
                    } else if n < PREFACE.len() {
                        return Ok(());
                    } else {
                        self.ready.unsplit(self.raw.split_to(PREFACE.len()));
                        self.mode = Mode::Frames(Frames {
                            skip: 0,
                            hpack: None,
                        });
                    }
                }
                Mode::Frames(frames) => {
                    if frames.skip > 0 {
                        let n = frames.skip.min(self.raw.len());
                        if n == 0 {
                            return Ok(());
                        }
                        frames.skip -= n;
                        self.ready.unsplit(self.raw.split_to(n));
                        continue;
                    }
                    let Some(head) = FrameHead::parse(&self.raw) else {
                        if eof {
                            self.mode = Mode::Pass;
                            continue;
                        }
                        return Ok(());
                    };
                    if head.kind != TYPE_HEADERS {
                        frames.skip = FRAME_HEAD_LEN + head.len;
                        continue;
                    }
                    let len = match header_block_len(&self.raw) {
                        Scan::Complete(len) => len,
                        Scan::Incomplete if !eof => return Ok(()),
                        Scan::Incomplete | Scan::Malformed => match frames.hpack {
                            // Leave h2 to report the client's mistake.
                            None => {
                                self.mode = Mode::Pass;
                                continue;
                            }
                            Some(_) if eof => {
                                self.mode = Mode::Pass;
                                continue;
                            }
                            Some(_) => return Err(invalid("malformed or oversized header block")),
                        },
                    };
                    match &mut frames.hpack {
                        None => {
                            if first_block_needs_rewrite(&self.raw[..len]) {
                                frames.hpack = Some(Box::new(Hpack {
                                    decoder: Decoder::new(),
                                    encoder: Encoder::new(),
                                }));
                            } else {
                                self.mode = Mode::Pass;
                            }
                        }
                        Some(hpack) => {
                            let block = HeaderBlock::parse(&self.raw[..len])
                                .ok_or_else(|| invalid("malformed header block"))?;
                            let fragment = hpack.rewrite(&block.fragment)?;
                            block.write_frames(&fragment, &mut self.ready);
                            self.raw.advance(len);
                        }
                    }
                }
            }
        }
    }
}

impl Hpack {
    /// Decode a header block and encode it again with its `:authority` fixed.
    fn rewrite(&mut self, fragment: &[u8]) -> io::Result<Vec<u8>> {
        let headers = self
            .decoder
            .decode(fragment)
            .map_err(|e| invalid(&format!("HPACK: {e}")))?;
        let fixed: Vec<(&[u8], &[u8])> = headers
            .iter()
            .filter_map(|(name, value)| {
                if name.as_slice() == AUTHORITY {
                    host_port(value).map(|v| (AUTHORITY, v))
                } else {
                    Some((name.as_slice(), value.as_slice()))
                }
            })
            .collect();
        Ok(self.encoder.encode(fixed))
    }
}

/// Whether the first header block (its frames, as the client sent them) has an
/// `:authority` that h2 would reject. Anything undecodable is left to h2.
fn first_block_needs_rewrite(frames: &[u8]) -> bool {
    let Some(block) = HeaderBlock::parse(frames) else {
        return false;
    };
    let mut needs = false;
    let decoded = Decoder::new().decode_with_cb(&block.fragment, |name, value| {
        if name.as_ref() == AUTHORITY && Authority::try_from(value.as_ref()).is_err() {
            needs = true;
        }
    });
    decoded.is_ok() && needs
}

/// The value h2 will accept for an `:authority`: unchanged if it already parses (h2
/// uses the same parser), else the `host[:port]` of a URL such as
/// `http://127.0.0.1:2379/`. `None` drops the header, which HTTP/2 allows.
fn host_port(value: &[u8]) -> Option<&[u8]> {
    if Authority::try_from(value).is_ok() {
        return Some(value);
    }
    let rest = match value.windows(3).position(|w| w == b"://") {
        Some(i) => &value[i + 3..],
        None => value,
    };
    let end = rest
        .iter()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let host = &rest[..end];
    Authority::try_from(host).is_ok().then_some(host)
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

struct FrameHead {
    len: usize,
    kind: u8,
    flags: u8,
    stream: u32,
}

impl FrameHead {
    fn parse(buf: &[u8]) -> Option<Self> {
        let h = buf.get(..FRAME_HEAD_LEN)?;
        Some(Self {
            len: usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]),
            kind: h[3],
            flags: h[4],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        })
    }

    fn write(len: usize, kind: u8, flags: u8, stream: u32, out: &mut BytesMut) {
        // `len` never exceeds MAX_FRAME_PAYLOAD, so it fits the 24-bit field.
        out.put_uint(len as u64, 3);
        out.put_u8(kind);
        out.put_u8(flags);
        out.put_u32(stream);
    }
}

enum Scan {
    /// The header block's frames take this many bytes.
    Complete(usize),
    Incomplete,
    /// Not a HEADERS frame followed by CONTINUATIONs of its stream, or too large.
    Malformed,
}

/// How many bytes the header block starting at `buf` (a HEADERS frame) takes.
fn header_block_len(buf: &[u8]) -> Scan {
    let mut pos = 0;
    let mut stream = None;
    loop {
        let Some(head) = FrameHead::parse(&buf[pos..]) else {
            return Scan::Incomplete;
        };
        let kind = if pos == 0 {
            TYPE_HEADERS
        } else {
            TYPE_CONTINUATION
        };
        if head.kind != kind || stream.is_some_and(|s| s != head.stream) {
            return Scan::Malformed;
        }
        stream = Some(head.stream);
        pos += FRAME_HEAD_LEN + head.len;
        if pos > MAX_HEADER_BLOCK {
            return Scan::Malformed;
        }
        if buf.len() < pos {
            return Scan::Incomplete;
        }
        if head.flags & FLAG_END_HEADERS != 0 {
            return Scan::Complete(pos);
        }
    }
}

/// A header block taken apart: what its frames carry besides the HPACK bytes.
struct HeaderBlock {
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; PRIORITY_LEN]>,
    /// The HPACK-encoded header list, padding removed, CONTINUATIONs joined.
    fragment: Vec<u8>,
}

impl HeaderBlock {
    /// Parse the frames that [`header_block_len`] found complete.
    fn parse(mut buf: &[u8]) -> Option<Self> {
        let head = FrameHead::parse(buf)?;
        let mut payload = buf.get(FRAME_HEAD_LEN..FRAME_HEAD_LEN + head.len)?;
        buf = &buf[FRAME_HEAD_LEN + head.len..];
        if head.flags & FLAG_PADDED != 0 {
            let (&pad, rest) = payload.split_first()?;
            payload = rest.get(..rest.len().checked_sub(usize::from(pad))?)?;
        }
        let priority = if head.flags & FLAG_PRIORITY != 0 {
            let p: [u8; PRIORITY_LEN] = payload.get(..PRIORITY_LEN)?.try_into().ok()?;
            payload = &payload[PRIORITY_LEN..];
            Some(p)
        } else {
            None
        };
        let mut fragment = payload.to_vec();
        while let Some(cont) = FrameHead::parse(buf) {
            fragment.extend_from_slice(buf.get(FRAME_HEAD_LEN..FRAME_HEAD_LEN + cont.len)?);
            buf = &buf[FRAME_HEAD_LEN + cont.len..];
        }
        Some(Self {
            stream: head.stream,
            end_stream: head.flags & FLAG_END_STREAM != 0,
            priority,
            fragment,
        })
    }

    /// Write a HEADERS frame (and CONTINUATIONs as needed) carrying `fragment`; padding
    /// is dropped, END_STREAM and PRIORITY are kept.
    fn write_frames(&self, fragment: &[u8], out: &mut BytesMut) {
        let prio_len = if self.priority.is_some() {
            PRIORITY_LEN
        } else {
            0
        };
        let (first, mut rest) = fragment.split_at(fragment.len().min(MAX_FRAME_PAYLOAD - prio_len));
        let mut flags = 0;
        if self.end_stream {
            flags |= FLAG_END_STREAM;
        }
        if self.priority.is_some() {
            flags |= FLAG_PRIORITY;
        }
        if rest.is_empty() {
            flags |= FLAG_END_HEADERS;
        }
        FrameHead::write(
            prio_len + first.len(),
            TYPE_HEADERS,
            flags,
            self.stream,
            out,
        );
        if let Some(p) = &self.priority {
            out.put_slice(p);
        }
        out.put_slice(first);
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME_PAYLOAD));
            rest = tail;
            let flags = if rest.is_empty() { FLAG_END_HEADERS } else { 0 };
            FrameHead::write(chunk.len(), TYPE_CONTINUATION, flags, self.stream, out);
            out.put_slice(chunk);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if matches!(this.mode, Mode::Pass) {
                return Pin::new(&mut this.io).poll_read(cx, buf);
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut chunk = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut chunk))?;
            this.raw.extend_from_slice(chunk.filled());
            this.process(chunk.filled().is_empty())?;
        }
    }
}

crate::tls::write_through!([S: AsyncWrite + Unpin] AuthorityFix<S>);

impl<S: Connected> Connected for AuthorityFix<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const SETTINGS: &[u8] = &[0, 0, 0, 0x4, 0, 0, 0, 0, 0];

    fn request_headers(authority: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/etcdserverpb.Maintenance/Status"),
            (":authority", authority),
            ("content-type", "application/grpc"),
            ("user-agent", "grpc-go/1.26.0"),
            ("te", "trailers"),
        ]
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
    }

    fn encode(enc: &mut Encoder<'static>, headers: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        enc.encode(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())))
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        FrameHead::write(payload.len(), kind, flags, stream, &mut out);
        out.put_slice(payload);
        out.to_vec()
    }

    /// Feed `input` through an [`AuthorityFix`] in small writes; return what it yields.
    async fn through_fix(input: Vec<u8>) -> Vec<u8> {
        let (mut client, server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            for piece in input.chunks(7) {
                client.write_all(piece).await.unwrap();
            }
            client.shutdown().await.unwrap();
            client
        });
        let mut fixed = AuthorityFix::new(server);
        let mut out = Vec::new();
        fixed.read_to_end(&mut out).await.unwrap();
        writer.await.unwrap();
        out
    }

    /// Split the frames after the preface; return (type, flags, stream, payload) each.
    fn frames(mut buf: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(h) = FrameHead::parse(buf) {
            out.push((
                h.kind,
                h.flags,
                h.stream,
                buf[FRAME_HEAD_LEN..FRAME_HEAD_LEN + h.len].to_vec(),
            ));
            buf = &buf[FRAME_HEAD_LEN + h.len..];
        }
        assert!(buf.is_empty());
        out
    }

    #[test]
    fn rewrites_url_authority_and_keeps_other_headers() {
        let headers = request_headers("http://127.0.0.1:2379");
        let mut client = Encoder::new();
        let mut hpack = Hpack {
            decoder: Decoder::new(),
            encoder: Encoder::new(),
        };
        let mut server = Decoder::new();
        // Twice, so the second block leans on both dynamic tables.
        for _ in 0..2 {
            let block = encode(&mut client, &headers);
            let fixed = hpack.rewrite(&block).unwrap();
            let decoded = server.decode(&fixed).unwrap();
            let mut expected = headers.clone();
            expected[3].1 = b"127.0.0.1:2379".to_vec();
            assert_eq!(decoded, expected);
        }
    }

    #[test]
    fn host_port_of_authorities() {
        let cases: &[(&str, Option<&str>)] = &[
            ("127.0.0.1:2379", Some("127.0.0.1:2379")),
            ("localhost", Some("localhost")),
            ("http://127.0.0.1:2379", Some("127.0.0.1:2379")),
            ("https://[::1]:2379/some/path?q", Some("[::1]:2379")),
            ("unix:///tmp/sock", None),
        ];
        for (value, want) in cases {
            let got = host_port(value.as_bytes()).map(|v| String::from_utf8(v.to_vec()).unwrap());
            assert_eq!(got.as_deref(), *want, "{value}");
        }
    }

    #[tokio::test]
    async fn plain_authority_passes_through_byte_for_byte() {
        let mut enc = Encoder::new();
        let block = encode(&mut enc, &request_headers("127.0.0.1:2379"));
        let (a, b) = block.split_at(block.len() / 2);
        let mut input = PREFACE.to_vec();
        input.extend(SETTINGS);
        input.extend(frame(TYPE_HEADERS, 0, 1, a));
        input.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, b));
        input.extend(frame(0x0, FLAG_END_STREAM, 1, b"\0\0\0\0\x02hi"));
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS,
            3,
            b"\xff\xff garbage",
        ));
        assert_eq!(through_fix(input.clone()).await, input);
    }

    #[tokio::test]
    async fn http1_passes_through_byte_for_byte() {
        let input = b"GET /health HTTP/1.1\r\nHost: http://127.0.0.1:2379\r\n\r\n".to_vec();
        assert_eq!(through_fix(input.clone()).await, input);
    }

    #[tokio::test]
    async fn frames_before_the_first_request_are_not_held_back() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut fixed = AuthorityFix::new(server);
        let mut input = PREFACE.to_vec();
        input.extend(SETTINGS);
        client.write_all(&input).await.unwrap();
        let mut got = vec![0; input.len()];
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            fixed.read_exact(&mut got),
        );
        read.await.unwrap().unwrap();
        assert_eq!(got, input);
    }

    #[tokio::test]
    async fn url_authority_connection_is_rewritten() {
        let headers = request_headers("http://127.0.0.1:2379");
        let mut enc = Encoder::new();
        let first = encode(&mut enc, &headers);
        let second = encode(&mut enc, &headers);
        let data = frame(0x0, FLAG_END_STREAM, 1, b"\0\0\0\0\x02hi");

        // First block: PADDED + PRIORITY HEADERS, then a CONTINUATION.
        let (a, b) = first.split_at(first.len() / 2);
        let mut payload = vec![3];
        payload.extend([0, 0, 0, 0, 15]);
        payload.extend(a);
        payload.extend([0; 3]);
        let mut input = PREFACE.to_vec();
        input.extend(SETTINGS);
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_PADDED | FLAG_PRIORITY,
            1,
            &payload,
        ));
        input.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, b));
        input.extend(&data);
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS | FLAG_END_STREAM,
            3,
            &second,
        ));

        let out = through_fix(input).await;
        assert_eq!(&out[..PREFACE.len()], PREFACE);
        let got = frames(&out[PREFACE.len()..]);
        assert_eq!(got.len(), 4);
        assert_eq!(frame(got[0].0, got[0].1, got[0].2, &got[0].3), SETTINGS);
        assert_eq!(frame(got[2].0, got[2].1, got[2].2, &got[2].3), data);

        let mut expected = headers.clone();
        expected[3].1 = b"127.0.0.1:2379".to_vec();
        let mut server = Decoder::new();
        let (kind, flags, stream, payload) = &got[1];
        assert_eq!(
            (*kind, *flags, *stream),
            (TYPE_HEADERS, FLAG_PRIORITY | FLAG_END_HEADERS, 1)
        );
        assert_eq!(&payload[..PRIORITY_LEN], &[0, 0, 0, 0, 15]);
        assert_eq!(server.decode(&payload[PRIORITY_LEN..]).unwrap(), expected);
        let (kind, flags, stream, payload) = &got[3];
        assert_eq!(
            (*kind, *flags, *stream),
            (TYPE_HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 3)
        );
        assert_eq!(server.decode(payload).unwrap(), expected);
    }

    #[test]
    fn large_blocks_are_split_into_continuations() {
        let block = HeaderBlock {
            stream: 5,
            end_stream: false,
            priority: None,
            fragment: Vec::new(),
        };
        let fragment = vec![0x42; MAX_FRAME_PAYLOAD * 2 + 10];
        let mut out = BytesMut::new();
        block.write_frames(&fragment, &mut out);
        let got = frames(&out);
        let shape: Vec<_> = got.iter().map(|f| (f.0, f.1, f.2, f.3.len())).collect();
        assert_eq!(
            shape,
            [
                (TYPE_HEADERS, 0, 5, MAX_FRAME_PAYLOAD),
                (TYPE_CONTINUATION, 0, 5, MAX_FRAME_PAYLOAD),
                (TYPE_CONTINUATION, FLAG_END_HEADERS, 5, 10),
            ]
        );
        let joined: Vec<u8> = got.into_iter().flat_map(|f| f.3).collect();
        assert_eq!(joined, fragment);
    }
}
