//! Tests of the HTTP layer: shapes from the wire captures, limits, and properties.

use super::*;
use crate::constants::{HTTP_HEADER_COUNT_MAX, HTTP_HEAD_BYTES_MAX};
use proptest::prelude::*;
use std::time::{Duration, UNIX_EPOCH};

fn head(s: &str) -> (RequestHead, usize) {
    parse_head(s.as_bytes()).expect("parses").expect("complete")
}

// ---------------------------------------------------------------- request heads

#[test]
fn parses_boto3_put_head() {
    let raw = "PUT /wire/boto3-small HTTP/1.1\r\nHost: 127.0.0.1:9000\r\n\
        Expect: 100-continue\r\nTransfer-Encoding: chunked\r\nContent-Encoding: aws-chunked\r\n\
        X-Amz-Trailer: x-amz-checksum-crc32\r\nX-Amz-Decoded-Content-Length: 10\r\n\
        X-Amz-Content-SHA256:   STREAMING-UNSIGNED-PAYLOAD-TRAILER  \r\n\r\nbody";
    let (h, n) = head(raw);
    assert_eq!(&raw[n..], "body");
    assert_eq!(h.method, "PUT");
    assert_eq!(h.path, "/wire/boto3-small");
    assert_eq!(h.raw_query, "");
    assert!(h.query.is_empty());
    assert_eq!(h.minor_version, 1);
    assert_eq!(h.header("host"), Some("127.0.0.1:9000"));
    assert_eq!(
        h.header("X-AMZ-CONTENT-SHA256"),
        Some("STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    );
    assert_eq!(h.headers[2].0, "transfer-encoding");
    assert!(h.expects_continue());
    assert!(h.keep_alive());
    assert_eq!(body_framing(&h), Ok(BodyFraming::Chunked));
}

#[test]
fn parses_queries_as_clients_send_them() {
    let (h, _) = head("POST /wire/boto3-upload-file?uploads HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(h.query, vec![("uploads".to_string(), String::new())]);
    assert!(h.has_query("uploads"));
    assert_eq!(h.query_param("uploads"), Some(""));

    let (h, _) = head("POST /wire/rclone-mpu?uploads= HTTP/1.1\r\n\r\n");
    assert_eq!(h.query, vec![("uploads".to_string(), String::new())]);

    let (h, _) = head(
        "PUT /wire/sdk-default-mpu?x-id=UploadPart&partNumber=1&uploadId=DJeZ HTTP/1.1\r\n\r\n",
    );
    assert_eq!(h.query_param("partNumber"), Some("1"));
    assert_eq!(h.query_param("uploadId"), Some("DJeZ"));
    assert_eq!(h.query_param("x-id"), Some("UploadPart"));
    assert!(!h.has_query("uploads"));

    let (h, _) =
        head("GET /wire?list-type=2&prefix=&delimiter=%2F&encoding-type=url HTTP/1.1\r\n\r\n");
    assert_eq!(h.path, "/wire");
    assert_eq!(
        h.raw_query,
        "list-type=2&prefix=&delimiter=%2F&encoding-type=url"
    );
    assert_eq!(h.query_param("delimiter"), Some("/"));
    assert_eq!(h.query_param("prefix"), Some(""));

    let (h, _) = head("GET /wire/?delimiter=%2F HTTP/1.1\r\n\r\n");
    assert_eq!(h.path, "/wire/");
    assert_eq!(h.query_param("delimiter"), Some("/"));

    // `+` stays literal; empty segments are skipped.
    let (h, _) = head("GET /b?prefix=a+b&&x=%20 HTTP/1.1\r\n\r\n");
    assert_eq!(h.query_param("prefix"), Some("a+b"));
    assert_eq!(h.query_param("x"), Some(" "));
    assert_eq!(h.query.len(), 2);
}

#[test]
fn decodes_paths() {
    let (h, _) = head("GET /b/caf%C3%A9%20%2B+x%2Fy HTTP/1.1\r\n\r\n");
    assert_eq!(h.raw_path, "/b/caf%C3%A9%20%2B+x%2Fy");
    assert_eq!(h.path, "/b/café ++x/y");
    assert_eq!(
        parse_head(b"GET /b/%zz HTTP/1.1\r\n\r\n"),
        Err(HttpError::BadPath)
    );
    assert_eq!(
        parse_head(b"GET /b/%C3 HTTP/1.1\r\n\r\n"),
        Err(HttpError::BadPath)
    );
    assert_eq!(
        parse_head(b"GET /b/%4 HTTP/1.1\r\n\r\n"),
        Err(HttpError::BadPath)
    );
    assert_eq!(
        parse_head(b"GET /b?x=%ff HTTP/1.1\r\n\r\n"),
        Err(HttpError::BadQuery)
    );
}

#[test]
fn absolute_form_targets() {
    let (h, _) = head("GET http://127.0.0.1:9000/bucket/key?acl HTTP/1.1\r\n\r\n");
    assert_eq!(h.raw_target, "http://127.0.0.1:9000/bucket/key?acl");
    assert_eq!(h.raw_path, "/bucket/key");
    assert_eq!(h.raw_query, "acl");
    let (h, _) = head("GET HTTPS://host HTTP/1.1\r\n\r\n");
    assert_eq!(h.path, "/");
    let (h, _) = head("GET http://host?list-type=2 HTTP/1.1\r\n\r\n");
    assert_eq!(h.path, "/");
    assert!(h.has_query("list-type"));
    let (h, _) = head("OPTIONS * HTTP/1.1\r\n\r\n");
    assert_eq!(h.path, "*");
    assert_eq!(
        parse_head(b"CONNECT host:443 HTTP/1.1\r\n\r\n"),
        Err(HttpError::BadTarget)
    );
    // Found by proptest: a non-ASCII target must not be sliced inside a character.
    let _ = parse_head("A ¡𐀀\u{80} HTTP/1.1\r\n\r\n".as_bytes());
    assert_eq!(
        parse_head(b"GET ftp://x/y HTTP/1.1\r\n\r\n"),
        Err(HttpError::BadTarget)
    );
    assert_eq!(
        parse_head(b"GET http:///y HTTP/1.1\r\n\r\n"),
        Err(HttpError::BadTarget)
    );
}

#[test]
fn pipelined_and_leading_crlf() {
    let raw = b"\r\nGET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    let (h, n) = parse_head(raw).unwrap().unwrap();
    assert_eq!(h.path, "/a");
    let (h, m) = parse_head(&raw[n..]).unwrap().unwrap();
    assert_eq!(h.path, "/b");
    assert_eq!(n + m, raw.len());
}

#[test]
fn partial_heads_need_more() {
    let raw = b"GET /b/k HTTP/1.1\r\nHost: x\r\n\r\n";
    for i in 0..raw.len() {
        assert_eq!(parse_head(&raw[..i]), Ok(None), "prefix {i}");
    }
    assert!(parse_head(raw).unwrap().is_some());
}

#[test]
fn head_limits() {
    // Partial and over the limit.
    let mut big = b"GET / HTTP/1.1\r\nx-a: ".to_vec();
    big.resize(HTTP_HEAD_BYTES_MAX + 10, b'a');
    assert_eq!(parse_head(&big), Err(HttpError::HeadTooLarge));
    // Complete but the end is past the limit.
    big.extend_from_slice(b"\r\n\r\n");
    assert_eq!(parse_head(&big), Err(HttpError::HeadTooLarge));
    // Just under the limit is fine.
    let mut ok = b"GET / HTTP/1.1\r\nx-a: ".to_vec();
    ok.resize(HTTP_HEAD_BYTES_MAX - 4, b'a');
    ok.extend_from_slice(b"\r\n\r\n");
    assert_eq!(ok.len(), HTTP_HEAD_BYTES_MAX);
    assert!(parse_head(&ok).unwrap().is_some());

    let mut many = String::from("GET / HTTP/1.1\r\n");
    for i in 0..=HTTP_HEADER_COUNT_MAX {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(parse_head(many.as_bytes()), Err(HttpError::TooManyHeaders));
}

#[test]
fn malformed_heads() {
    for raw in [
        &b"GET / HTTP/1.1\r\nbad header\r\n\r\n"[..],
        b"GET / HTTP/2.0\r\n\r\n",
        b"\x00\x01\x02 / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nx: \x01\r\n\r\n",
    ] {
        assert!(
            matches!(parse_head(raw), Err(HttpError::Malformed(_))),
            "{raw:?}"
        );
    }
    assert_eq!(
        parse_head(b"GET / HTTP/1.1\r\nx-amz-meta-a: \xff\xfe\r\n\r\n"),
        Err(HttpError::BadHeaderValue)
    );
    // UTF-8 in header values is kept (user metadata).
    let (h, _) = head("GET / HTTP/1.1\r\nx-amz-meta-a: café\r\n\r\n");
    assert_eq!(h.header("x-amz-meta-a"), Some("café"));
}

#[test]
fn keep_alive_and_continue() {
    let (h, _) = head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(!h.keep_alive());
    let (h, _) = head("GET / HTTP/1.1\r\nConnection: Upgrade, Close\r\n\r\n");
    assert!(!h.keep_alive());
    let (h, _) = head("GET / HTTP/1.0\r\n\r\n");
    assert!(!h.keep_alive());
    let (h, _) = head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    assert!(h.keep_alive());
    let (h, _) = head("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n");
    assert!(!h.expects_continue());
    let (h, _) = head("PUT / HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n");
    assert!(h.expects_continue());
    let (h, _) = head("PUT / HTTP/1.1\r\n\r\n");
    assert!(!h.expects_continue());
}

#[test]
fn framing() {
    let f = |extra: &str| {
        let raw = format!("PUT /b/k HTTP/1.1\r\n{extra}\r\n");
        body_framing(&head(&raw).0)
    };
    assert_eq!(f(""), Ok(BodyFraming::Empty));
    assert_eq!(f("Content-Length: 10\r\n"), Ok(BodyFraming::Length(10)));
    assert_eq!(f("Content-Length: 0\r\n"), Ok(BodyFraming::Length(0)));
    assert_eq!(
        f("Content-Length: 10\r\nContent-Length: 10\r\n"),
        Ok(BodyFraming::Length(10))
    );
    assert_eq!(f("Content-Length: 10, 10\r\n"), Ok(BodyFraming::Length(10)));
    assert_eq!(
        f("Content-Length: 18446744073709551615\r\n"),
        Ok(BodyFraming::Length(u64::MAX))
    );
    for bad in [
        "Content-Length: 10\r\nContent-Length: 11\r\n",
        "Content-Length: -1\r\n",
        "Content-Length: +1\r\n",
        "Content-Length: 0x10\r\n",
        "Content-Length: \r\n",
        "Content-Length: 18446744073709551616\r\n",
        "Content-Length: 1 0\r\n",
    ] {
        assert_eq!(f(bad), Err(HttpError::BadContentLength), "{bad}");
    }
    assert_eq!(
        f("Transfer-Encoding: chunked\r\n"),
        Ok(BodyFraming::Chunked)
    );
    assert_eq!(
        f("Transfer-Encoding: Chunked\r\n"),
        Ok(BodyFraming::Chunked)
    );
    assert_eq!(
        f("Transfer-Encoding: chunked\r\nContent-Length: 10\r\n"),
        Err(HttpError::TransferEncodingWithContentLength)
    );
    assert_eq!(
        f("Transfer-Encoding: gzip, chunked\r\n"),
        Err(HttpError::UnsupportedTransferEncoding)
    );
    assert_eq!(
        f("Transfer-Encoding: chunked, gzip\r\n"),
        Err(HttpError::BadTransferEncoding)
    );
    assert_eq!(
        f("Transfer-Encoding: \r\n"),
        Err(HttpError::BadTransferEncoding)
    );
    let (h10, _) = head("PUT / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(body_framing(&h10), Err(HttpError::BadTransferEncoding));
}

// ---------------------------------------------------------------- chunked

/// (data, bytes consumed, trailers, done)
type ChunkedOut = (Vec<u8>, usize, Vec<(String, String)>, bool);

/// Feeds `pieces` in order (as a caller with a growing buffer would) and collects data,
/// stopping at Done. Returns data, bytes consumed in total, trailers.
fn run_chunked(pieces: &[&[u8]]) -> Result<ChunkedOut, HttpError> {
    let mut d = ChunkedDecoder::new();
    let mut data = Vec::new();
    let mut consumed = 0;
    let mut pending: Vec<u8> = Vec::new();
    for piece in pieces {
        pending.extend_from_slice(piece);
        let mut pos = 0;
        loop {
            let (n, ev) = d.decode(&pending[pos..])?;
            pos += n;
            consumed += n;
            match ev {
                Some(BodyEvent::Data(b)) => data.extend_from_slice(b),
                Some(BodyEvent::Done) => return Ok((data, consumed, d.trailers().to_vec(), true)),
                None => {
                    assert_eq!(pos, pending.len(), "None means everything was consumed");
                    break;
                }
            }
        }
        pending.drain(..pos);
    }
    Ok((data, consumed, d.trailers().to_vec(), false))
}

#[test]
fn chunked_boto3_https_shape() {
    // The HTTP chunked framing boto3 sends over HTTPS, carrying an aws-chunked payload.
    let aws = b"a\r\n0123456789\r\n0\r\nx-amz-checksum-crc32:poTHxg==\r\n\r\n";
    let mut wire = format!("{:x}\r\n", aws.len()).into_bytes();
    wire.extend_from_slice(aws);
    wire.extend_from_slice(b"\r\n0\r\n\r\nGET /next");
    let (data, consumed, trailers, done) = run_chunked(&[&wire]).unwrap();
    assert!(done);
    assert_eq!(data, aws);
    assert_eq!(&wire[consumed..], b"GET /next");
    assert!(trailers.is_empty());
}

#[test]
fn chunked_extensions_and_trailers() {
    let wire = b"4;name=value;x\r\nWiki\r\n5 ;ext\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n\
        000\r\nX-Checksum: abc \r\nother:\tv\r\n\r\n";
    let (data, consumed, trailers, done) = run_chunked(&[wire]).unwrap();
    assert!(done);
    assert_eq!(consumed, wire.len());
    assert_eq!(data, b"Wikipedia in\r\n\r\nchunks.");
    assert_eq!(
        trailers,
        vec![
            ("x-checksum".to_string(), "abc".to_string()),
            ("other".to_string(), "v".to_string())
        ]
    );
}

#[test]
fn chunked_errors() {
    let err = |w: &[u8]| run_chunked(&[w]).unwrap_err();
    assert_eq!(err(b"ffffffffffffffffff\r\n"), HttpError::ChunkSizeOverflow);
    assert_eq!(err(b"10000000000000000\r\n"), HttpError::ChunkSizeOverflow);
    assert_eq!(err(b"zz\r\n"), HttpError::BadChunkSize);
    assert_eq!(err(b"\r\n"), HttpError::BadChunkSize);
    assert_eq!(err(b"-1\r\n"), HttpError::BadChunkSize);
    assert_eq!(err(b"4 x\r\n"), HttpError::BadChunkSize);
    assert_eq!(err(b"4\nWiki\r\n"), HttpError::BadLineEnding);
    assert_eq!(err(b"4\r\r\n"), HttpError::BadLineEnding);
    assert_eq!(err(b"4\r\nWikiX\r\n"), HttpError::MissingChunkCrlf);
    assert_eq!(err(b"0\r\nno colon\r\n\r\n"), HttpError::BadTrailer);
    assert_eq!(err(b"0\r\n folded: x\r\n\r\n"), HttpError::BadTrailer);
    let mut long = b"1".to_vec();
    long.resize(CHUNK_LINE_BYTES_MAX + 1, b'0');
    assert_eq!(err(&long), HttpError::LineTooLong);
    let mut long_ext = b"1;".to_vec();
    long_ext.resize(CHUNK_LINE_BYTES_MAX * 2, b'x');
    assert_eq!(err(&long_ext), HttpError::LineTooLong);
    // Trailers: too many bytes, too many fields.
    let mut t = b"0\r\n".to_vec();
    for i in 0..1000 {
        t.extend_from_slice(format!("x-t{i}: {}\r\n", "v".repeat(40)).as_bytes());
    }
    assert_eq!(err(&t), HttpError::TrailersTooLarge);
    let mut t = b"0\r\n".to_vec();
    for _ in 0..=TRAILER_COUNT_MAX {
        t.extend_from_slice(b"a:b\r\n");
    }
    assert_eq!(err(&t), HttpError::TrailersTooLarge);
}

#[test]
fn chunked_huge_sizes_stream_without_overflow() {
    let mut d = ChunkedDecoder::new();
    let (n, ev) = d.decode(b"ffffffffffffffff\r\nabc").unwrap();
    assert_eq!(n, 21);
    assert_eq!(ev, Some(BodyEvent::Data(b"abc")));
    assert!(!d.is_done());
}

#[test]
fn chunked_done_is_sticky() {
    let mut d = ChunkedDecoder::new();
    assert_eq!(
        d.decode(b"0\r\n\r\nrest").unwrap(),
        (5, Some(BodyEvent::Done))
    );
    assert_eq!(d.decode(b"rest").unwrap(), (0, Some(BodyEvent::Done)));
    assert!(d.is_done());
    assert_eq!(d.decode(b"").unwrap(), (0, Some(BodyEvent::Done)));
    let mut d = ChunkedDecoder::new();
    assert_eq!(d.decode(b"").unwrap(), (0, None));
}

// ---------------------------------------------------------------- aws-chunked

#[derive(Debug, Default, PartialEq, Eq)]
struct AwsOut {
    data: Vec<u8>,
    /// (size, signature, data bytes seen in the chunk)
    chunks: Vec<(u64, Option<String>, u64)>,
    trailers: Vec<(String, String)>,
    done: bool,
    consumed: usize,
}

fn run_aws(pieces: &[&[u8]]) -> Result<AwsOut, HttpError> {
    let mut d = AwsChunkedDecoder::new();
    let mut out = AwsOut::default();
    let mut open = false;
    let mut pending: Vec<u8> = Vec::new();
    for piece in pieces {
        pending.extend_from_slice(piece);
        let mut pos = 0;
        loop {
            let (n, ev) = d.decode(&pending[pos..])?;
            pos += n;
            out.consumed += n;
            match ev {
                Some(AwsChunkEvent::ChunkStart { size, signature }) => {
                    assert!(!open, "ChunkStart inside a chunk");
                    open = true;
                    out.chunks.push((size, signature, 0));
                }
                Some(AwsChunkEvent::Data(b)) => {
                    assert!(open);
                    assert!(!b.is_empty());
                    out.chunks.last_mut().unwrap().2 += b.len() as u64;
                    out.data.extend_from_slice(b);
                }
                Some(AwsChunkEvent::ChunkEnd) => {
                    assert!(open);
                    open = false;
                    let c = out.chunks.last().unwrap();
                    assert_eq!(c.0, c.2, "chunk size equals its data");
                }
                Some(AwsChunkEvent::Trailer { name, value }) => {
                    assert!(!open);
                    out.trailers.push((name, value));
                }
                Some(AwsChunkEvent::Done) => {
                    assert!(!open);
                    out.done = true;
                    return Ok(out);
                }
                None => {
                    assert_eq!(pos, pending.len());
                    break;
                }
            }
        }
        pending.drain(..pos);
    }
    Ok(out)
}

const SIG1: &str = "c1365b67a2506bd55ba46fcb5ed9dcce4b2b333227e6ccb7c991b5d4c0f7a581";
const SIG2: &str = "6cd035b7cb3bf6bba20c5a1fcf95dd337ccf093c3be9c2eb435d7e2ea540fb7b";

fn signed_trailer_shape() -> Vec<u8> {
    // aws-sdk-rust, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER.
    format!(
        "A;chunk-signature={SIG1}\r\n0123456789\r\n0;chunk-signature={SIG2}\r\n\
         x-amz-checksum-crc32:poTHxg==\r\nx-amz-trailer-signature:{SIG2}\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn aws_unsigned_trailer_shape() {
    // boto3 / AWS CLI v1 over HTTPS and aws-sdk-rust over HTTPS.
    for first in ["a", "A"] {
        let wire = format!("{first}\r\n0123456789\r\n0\r\nx-amz-checksum-crc32:poTHxg==\r\n\r\n");
        let out = run_aws(&[wire.as_bytes()]).unwrap();
        assert!(out.done);
        assert_eq!(out.consumed, wire.len());
        assert_eq!(out.data, b"0123456789");
        assert_eq!(out.chunks, vec![(10, None, 10), (0, None, 0)]);
        assert_eq!(
            out.trailers,
            vec![("x-amz-checksum-crc32".to_string(), "poTHxg==".to_string())]
        );
    }
}

#[test]
fn aws_signed_trailer_shape() {
    let wire = signed_trailer_shape();
    let out = run_aws(&[&wire]).unwrap();
    assert!(out.done);
    assert_eq!(out.consumed, wire.len());
    assert_eq!(out.data, b"0123456789");
    assert_eq!(
        out.chunks,
        vec![
            (10, Some(SIG1.to_string()), 10),
            (0, Some(SIG2.to_string()), 0)
        ]
    );
    assert_eq!(
        out.trailers,
        vec![
            ("x-amz-checksum-crc32".to_string(), "poTHxg==".to_string()),
            ("x-amz-trailer-signature".to_string(), SIG2.to_string())
        ]
    );
}

#[test]
fn aws_signed_no_trailer_and_bare_shapes() {
    let wire = format!("3;chunk-signature={SIG1}\r\nabc\r\n0;chunk-signature={SIG2}\r\n\r\n");
    let out = run_aws(&[wire.as_bytes()]).unwrap();
    assert!(out.done && out.trailers.is_empty());
    assert_eq!(out.data, b"abc");
    let out = run_aws(&[b"0\r\n\r\n"]).unwrap();
    assert!(out.done);
    assert_eq!(out.chunks, vec![(0, None, 0)]);
    // Big chunks as sent by the SDKs (0x10000 and 0x100000).
    let mut wire = b"10000\r\n".to_vec();
    wire.resize(wire.len() + 0x10000, 7);
    wire.extend_from_slice(b"\r\n0\r\n\r\n");
    let out = run_aws(&[&wire]).unwrap();
    assert_eq!(out.data.len(), 0x10000);
}

#[test]
fn aws_finish_is_lenient_only_after_last_chunk() {
    let mut d = AwsChunkedDecoder::new();
    let input = b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n";
    let mut pos = 0;
    while pos < input.len() {
        let (n, _) = d.decode(&input[pos..]).unwrap();
        pos += n;
    }
    assert_eq!(d.finish(), Ok(true));
    assert!(d.is_done());
    assert_eq!(d.finish(), Ok(false));

    let mut d = AwsChunkedDecoder::new();
    let (_, _) = d.decode(b"3\r\nab").unwrap();
    assert_eq!(d.finish(), Err(HttpError::Truncated));
}

#[test]
fn aws_errors() {
    let err = |w: &[u8]| run_aws(&[w]).unwrap_err();
    assert_eq!(err(b"ffffffffffffffffff\r\n"), HttpError::ChunkSizeOverflow);
    assert_eq!(err(b"3;chunk-signature=\r\n"), HttpError::BadChunkSize);
    assert_eq!(err(b"3;chunk-signature=a b\r\n"), HttpError::BadChunkSize);
    assert_eq!(err(b"3\r\nabcd\r\n"), HttpError::MissingChunkCrlf);
    assert_eq!(err(b"3\nabc\r\n"), HttpError::BadLineEnding);
    assert_eq!(
        err(b"0\r\nx-amz-checksum-crc32 poTHxg==\r\n\r\n"),
        HttpError::BadTrailer
    );
    // Unknown extensions are ignored.
    let out = run_aws(&[b"3;foo=bar\r\nabc\r\n0\r\n\r\n"]).unwrap();
    assert_eq!(out.chunks[0].1, None);
}

#[test]
fn aws_inside_chunked_split_everywhere() {
    // aws-chunked inside HTTP chunked, as boto3 sends over HTTPS, with HTTP chunk
    // boundaries that do not line up with the aws chunks.
    let aws = signed_trailer_shape();
    for split in 0..=aws.len() {
        let mut wire = Vec::new();
        for part in [&aws[..split], &aws[split..]] {
            write_chunk(&mut wire, part);
        }
        write_last_chunk(&mut wire);
        let (inner, consumed, _, done) = run_chunked(&[&wire]).unwrap();
        assert!(done);
        assert_eq!(consumed, wire.len());
        assert_eq!(inner, aws);
        let out = run_aws(&[&inner]).unwrap();
        assert_eq!(out.data, b"0123456789");
        assert_eq!(out.trailers.len(), 2);
    }
}

// ---------------------------------------------------------------- uri helpers

#[test]
fn uri_helpers() {
    assert_eq!(uri_decode("a%2Fb%20c+d").unwrap(), "a/b c+d");
    assert_eq!(uri_decode("%e2%82%AC").unwrap(), "€");
    assert_eq!(uri_decode("%").unwrap_err(), HttpError::BadPercentEncoding);
    assert_eq!(
        uri_decode("%g0").unwrap_err(),
        HttpError::BadPercentEncoding
    );
    assert_eq!(uri_decode("%c3%28").unwrap_err(), HttpError::NotUtf8);
    assert_eq!(url_encode_key("a/b c+d~e_f-g.h"), "a/b%20c%2Bd~e_f-g.h");
    assert_eq!(url_encode_key("é<&>\"'\u{1}"), "%C3%A9%3C%26%3E%22%27%01");
}

// ---------------------------------------------------------------- responses

#[test]
fn response_heads() {
    let mut out = Vec::new();
    write_response_head(
        &mut out,
        200,
        &[
            ("ETag", "\"781e5e245d69b566979b86e28d23f2c7\""),
            ("Content-Length", "0"),
        ],
    );
    assert_eq!(
        out,
        b"HTTP/1.1 200 OK\r\nETag: \"781e5e245d69b566979b86e28d23f2c7\"\r\nContent-Length: 0\r\n\r\n"
    );
    for s in [
        100, 200, 204, 206, 301, 304, 307, 400, 403, 404, 405, 409, 411, 412, 413, 416, 431, 500,
        501, 503,
    ] {
        assert_ne!(reason_phrase(s), "Unknown", "{s}");
    }
    let mut out = Vec::new();
    write_response_head(&mut out, 404, &[("x-evil", "a\r\nSet-Cookie: x")]);
    assert_eq!(
        out,
        b"HTTP/1.1 404 Not Found\r\nx-evil: aSet-Cookie: x\r\n\r\n"
    );
    let mut out = Vec::new();
    write_chunk(&mut out, b"");
    write_chunk(&mut out, &[b'x'; 26]);
    write_last_chunk(&mut out);
    assert_eq!(
        out,
        [&b"1a\r\n"[..], &[b'x'; 26], b"\r\n0\r\n\r\n"].concat()
    );
    assert_eq!(
        http_date(UNIX_EPOCH + Duration::from_secs(1_795_620_943)),
        "Wed, 25 Nov 2026 15:35:43 GMT"
    );
}

// ---------------------------------------------------------------- properties

/// (wire bytes, data, signed, trailers)
type AwsCase = (Vec<u8>, Vec<u8>, bool, Vec<(String, String)>);

fn aws_payload() -> impl Strategy<Value = AwsCase> {
    (
        prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 0..6),
        any::<bool>(),
        prop::collection::vec(
            ("x-amz-[a-z0-9-]{1,20}", "[ -~&&[^ ]][ -~]{0,30}[!-~]"),
            0..3,
        ),
    )
        .prop_map(|(chunks, signed, trailers)| {
            let mut wire = Vec::new();
            let mut data = Vec::new();
            let sig = |w: &mut Vec<u8>| {
                if signed {
                    w.extend_from_slice(format!(";chunk-signature={SIG1}").as_bytes());
                }
            };
            for c in &chunks {
                wire.extend_from_slice(format!("{:X}", c.len()).as_bytes());
                sig(&mut wire);
                wire.extend_from_slice(b"\r\n");
                wire.extend_from_slice(c);
                wire.extend_from_slice(b"\r\n");
                data.extend_from_slice(c);
            }
            wire.extend_from_slice(b"0");
            sig(&mut wire);
            wire.extend_from_slice(b"\r\n");
            for (n, v) in &trailers {
                wire.extend_from_slice(format!("{n}:{v}\r\n").as_bytes());
            }
            wire.extend_from_slice(b"\r\n");
            (wire, data, signed, trailers)
        })
}

fn split_points(len: usize, cuts: &[usize]) -> Vec<usize> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (len + 1)).collect();
    points.push(0);
    points.push(len);
    points.sort_unstable();
    points.dedup();
    points
}

fn pieces<'a>(bytes: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    points.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn aws_split_anywhere_equals_one_shot(
        (wire, data, signed, trailers) in aws_payload(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let whole = run_aws(&[&wire]).unwrap();
        prop_assert!(whole.done);
        prop_assert_eq!(whole.consumed, wire.len());
        prop_assert_eq!(&whole.data, &data);
        prop_assert_eq!(&whole.trailers, &trailers);
        prop_assert!(whole.chunks.iter().all(|c| c.1.is_some() == signed));
        let points = split_points(wire.len(), &cuts);
        let split = run_aws(&pieces(&wire, &points)).unwrap();
        prop_assert_eq!(split, whole);
    }

    #[test]
    fn chunked_split_anywhere_equals_one_shot(
        body in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..6),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut wire = Vec::new();
        for c in &body {
            write_chunk(&mut wire, c);
        }
        write_last_chunk(&mut wire);
        wire.extend_from_slice(b"NEXT");
        let whole = run_chunked(&[&wire]).unwrap();
        prop_assert!(whole.3);
        prop_assert_eq!(&whole.0, &body.concat());
        prop_assert_eq!(&wire[whole.1..], b"NEXT");
        let points = split_points(wire.len(), &cuts);
        let split = run_chunked(&pieces(&wire, &points)).unwrap();
        prop_assert_eq!(split, whole);
    }

    #[test]
    fn aws_inside_chunked_any_framing(
        (aws, data, _, trailers) in aws_payload(),
        http_cuts in prop::collection::vec(any::<usize>(), 0..8),
        read_cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        // HTTP chunks cut the aws payload anywhere; reads cut the wire anywhere; the
        // caller pipes ChunkedDecoder's data straight into AwsChunkedDecoder.
        let mut wire = Vec::new();
        for p in pieces(&aws, &split_points(aws.len(), &http_cuts)) {
            write_chunk(&mut wire, p);
        }
        write_last_chunk(&mut wire);
        let mut outer = ChunkedDecoder::new();
        let mut inner = AwsChunkedDecoder::new();
        let mut got = Vec::new();
        let mut got_trailers = Vec::new();
        let mut inner_done = false;
        let mut outer_done = false;
        let mut pending = Vec::new();
        for piece in pieces(&wire, &split_points(wire.len(), &read_cuts)) {
            pending.extend_from_slice(piece);
            let mut pos = 0;
            while !outer_done {
                let (n, ev) = outer.decode(&pending[pos..]).unwrap();
                pos += n;
                match ev {
                    Some(BodyEvent::Data(mut b)) => {
                        while !b.is_empty() {
                            let (m, ev) = inner.decode(b).unwrap();
                            b = &b[m..];
                            match ev {
                                Some(AwsChunkEvent::Data(d)) => got.extend_from_slice(d),
                                Some(AwsChunkEvent::Trailer { name, value }) => got_trailers.push((name, value)),
                                Some(AwsChunkEvent::Done) => { inner_done = true; prop_assert!(b.is_empty()); break }
                                _ => {}
                            }
                        }
                    }
                    Some(BodyEvent::Done) => outer_done = true,
                    None => break,
                }
            }
            pending.drain(..pos);
        }
        prop_assert!(outer_done && inner_done);
        prop_assert_eq!(got, data);
        prop_assert_eq!(got_trailers, trailers);
    }

    #[test]
    fn parse_head_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_head(&bytes);
    }

    #[test]
    fn parse_head_never_panics_on_near_valid(
        method in "[A-Z]{1,7}",
        target in "[ -~\u{80}-\u{10ffff}]{0,40}",
        headers in prop::collection::vec(("[!-~]{0,10}", "[ -~\t]{0,20}"), 0..5),
    ) {
        let mut raw = format!("{method} {target} HTTP/1.1\r\n");
        for (n, v) in headers {
            raw.push_str(&format!("{n}: {v}\r\n"));
        }
        raw.push_str("\r\n");
        if let Ok(Some((h, _))) = parse_head(raw.as_bytes()) {
            let _ = body_framing(&h);
            let _ = h.keep_alive();
        }
    }

    #[test]
    fn decoders_never_panic_on_garbage(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let points = split_points(bytes.len(), &cuts);
        let _ = run_chunked(&pieces(&bytes, &points));
        let _ = run_aws(&pieces(&bytes, &points));
    }

    #[test]
    fn decoders_never_panic_on_near_valid(
        bytes in prop::collection::vec(prop::sample::select(b"0123456789abcdefABCDEF;=\r\n: xg".to_vec()), 0..300),
    ) {
        let _ = run_chunked(&[&bytes]);
        let _ = run_aws(&[&bytes]);
    }

    #[test]
    fn uri_roundtrip(s in "\\PC{0,40}") {
        let enc = url_encode_key(&s);
        prop_assert!(enc.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~/%".contains(&b)));
        prop_assert_eq!(uri_decode(&enc).unwrap(), s);
    }

    #[test]
    fn uri_decode_never_panics(s in "[%0-9a-fA-Fg-z+/\u{80}-\u{ff}]{0,20}") {
        let _ = uri_decode(&s);
    }
}
