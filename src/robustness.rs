//! Arbitrary input never panics a parser: every pure parser of what a client sends (HTTP
//! heads and body framings, SigV4/SigV2 authorization, XML bodies, POST policies, header
//! values) is fed random bytes and mutations of valid input, and must return a value or
//! an error. The body decoders are driven through their whole input in random pieces.
//!
//! This is the fuzzing that runs in the default test command (stable Rust, seconds);
//! the mutations start from real requests, so they reach deep into each parser.

use proptest::prelude::*;

use crate::api::s3::{objects, part_copy};
use crate::http::form::FormParser;
use crate::http::{parse_head, uri_decode, AwsChunkedDecoder, ChunkedDecoder};
use crate::s3::sigv4::{self, AuthInput};
use crate::s3::{checksum, conditions, cors, policy, sigv2, website, xml};

/// Bytes that parsers split on, inserted more often than chance would.
const SEPARATORS: &[u8] = b"\r\n:;=,<>/&\"0 ";

/// A valid input with random damage: bytes replaced, removed, inserted, or the tail cut.
fn mutated(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let edits = prop::collection::vec((0usize..4, any::<usize>(), any::<u8>()), 0..8);
    (edits, any::<usize>()).prop_map(move |(edits, cut)| {
        let mut v = valid.clone();
        for (kind, at, byte) in edits {
            let at = at % (v.len() + 1);
            match kind {
                0 if at < v.len() => v[at] = byte,
                1 if at < v.len() => {
                    v.remove(at);
                }
                2 => v.insert(at, byte),
                _ => v.insert(at, SEPARATORS[usize::from(byte) % SEPARATORS.len()]),
            }
        }
        if cut % 4 == 0 {
            v.truncate(cut % (v.len() + 1));
        }
        v
    })
}

/// Where a body is cut into the pieces a connection would read.
fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..400, 0..6)
}

/// Random bytes or a damaged valid input, half and half.
fn input(parts: &[&[u8]]) -> impl Strategy<Value = Vec<u8>> {
    let valid = parts.concat();
    prop_oneof![prop::collection::vec(any::<u8>(), 0..400), mutated(valid)]
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

/// Feeds `input` to a decoder in pieces cut at `cuts`, as a connection would, calling it
/// until it asks for more. Stops at an error, at the end of the input, or when events
/// keep coming without input consumed (a finished decoder repeats `Done`). Fails if the
/// decoder claims more bytes than it was given. Returns how many events came.
fn drive<E>(
    input: &[u8],
    cuts: &[usize],
    mut decode: impl FnMut(&[u8]) -> Result<(usize, bool), E>,
) -> usize {
    let mut events = 0;
    let mut pending = Vec::new();
    let mut fed = 0;
    let mut stuck = 0;
    let mut cuts = cuts.to_vec();
    cuts.push(input.len());
    for cut in cuts {
        let cut = cut.min(input.len()).max(fed);
        pending.extend_from_slice(&input[fed..cut]);
        fed = cut;
        loop {
            match decode(&pending) {
                Err(_) => return events,
                Ok((0, false)) => break,
                Ok((n, event)) => {
                    assert!(n <= pending.len(), "consumed more than it was given");
                    pending.drain(..n);
                    events += usize::from(event);
                    stuck = if n == 0 && event { stuck + 1 } else { 0 };
                    if stuck > 8 {
                        // Done, repeated: the decoder is finished.
                        return events;
                    }
                }
            }
        }
    }
    events
}

const HEAD: &[&[u8]] = &[
    b"PUT /bucket/key%20x?partNumber=1&uploadId=abc HTTP/1.1\r\n",
    b"Host: 127.0.0.1:3900\r\n",
    b"Content-Length: 5\r\n",
    b"x-amz-content-sha256: UNSIGNED-PAYLOAD\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Authorization: AWS4-HMAC-SHA256 Credential=GKabc/20261126/us-east-1/s3/aws4_request,",
    b" ",
    b"SignedHeaders=host;x-amz-date, Signature=00ff\r\n\r\n",
];

const CHUNKED: &[&[u8]] = &[
    b"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\n",
    b"x-amz-checksum-crc32: AAAAAA==\r\n\r\n",
];

const AWS_CHUNKED: &[&[u8]] = &[
    b"5;chunk-signature=",
    b"0000000000000000000000000000000000000000000000000000000000000000",
    b"\r\nhello\r\n0;chunk-signature=",
    b"1111111111111111111111111111111111111111111111111111111111111111",
    b"\r\nx-amz-checksum-crc32c:AAAAAA==\r\nx-amz-trailer-signature:22\r\n\r\n",
];

const FORM: &[&[u8]] = &[
    b"--XyZ\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nuploads/${filename}\r\n",
    b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n",
    b"Content-Type: text/plain\r\n\r\nhello\r\n--XyZ--\r\n",
];

const COMPLETE: &[&[u8]] = &[
    b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
    b"<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
    b"<Part><PartNumber>1</PartNumber>",
    b"<ETag>\"0123456789abcdef0123456789abcdef\"</ETag>",
    b"<ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>",
    b"<Part><PartNumber>2</PartNumber><ETag>&quot;ab&quot;</ETag></Part>",
    b"</CompleteMultipartUpload>",
];

const DELETE: &[&[u8]] = &[
    b"<Delete><Quiet>true</Quiet>",
    b"<Object><Key>a&amp;b</Key><VersionId>null</VersionId></Object>",
    b"<Object><Key><![CDATA[c<d]]></Key></Object></Delete>",
];

const LIFECYCLE: &[&[u8]] = &[
    b"<LifecycleConfiguration><Rule><ID>r</ID>",
    b"<Filter><And><Prefix>logs/</Prefix></And></Filter>",
    b"<Status>Enabled</Status><Expiration><Days>3</Days></Expiration>",
    b"<AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation>",
    b"</AbortIncompleteMultipartUpload></Rule></LifecycleConfiguration>",
];

const CORS: &[&[u8]] = &[
    b"<CORSConfiguration><CORSRule><AllowedOrigin>https://*.example.com</AllowedOrigin>",
    b"<AllowedMethod>GET</AllowedMethod><AllowedHeader>*</AllowedHeader>",
    b"<ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>300</MaxAgeSeconds>",
    b"</CORSRule></CORSConfiguration>",
];

const WEBSITE: &[&[u8]] = &[
    b"<WebsiteConfiguration><IndexDocument><Suffix>index.html</Suffix></IndexDocument>",
    b"<ErrorDocument><Key>404.html</Key></ErrorDocument></WebsiteConfiguration>",
];

const AUTH: &[&[u8]] = &[
    b"AWS4-HMAC-SHA256 Credential=GKabcdefabcdefabcdefabcd/20261126/us-east-1/s3/aws4_requ",
    b"est, ",
    b"SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=",
    b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
];

const QUERY: &[&[u8]] = &[
    b"X-Amz-Algorithm=AWS4-HMAC-SHA256",
    b"&X-Amz-Credential=GKabc%2F20261126%2Fus-east-1%2Fs3%2Faws4_request",
    b"&X-Amz-Date=20261126T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host",
    b"&X-Amz-Signature=00ff&AWSAccessKeyId=GK&Expires=1&Signature=a%2Bb",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn request_heads(bytes in input(HEAD)) {
        if let Ok(Some((head, used))) = parse_head(&bytes) {
            prop_assert!(used <= bytes.len());
            let _ = crate::http::body_framing(&head);
        }
    }

    #[test]
    fn chunked_bodies(bytes in input(CHUNKED), cuts in cuts()) {
        let mut d = ChunkedDecoder::new();
        drive(&bytes, &cuts, |b| d.decode(b).map(|(n, e)| (n, e.is_some())));
    }

    #[test]
    fn aws_chunked_bodies(bytes in input(AWS_CHUNKED), cuts in cuts()) {
        let mut d = AwsChunkedDecoder::new();
        drive(&bytes, &cuts, |b| d.decode(b).map(|(n, e)| (n, e.is_some())));
    }

    #[test]
    fn post_forms(bytes in input(FORM), cuts in cuts()) {
        let mut p = FormParser::new("XyZ");
        drive(&bytes, &cuts, |b| p.decode(b).map(|(n, e)| (n, e.is_some())));
    }

    #[test]
    fn xml_bodies(
        complete in input(COMPLETE),
        delete in input(DELETE),
        lifecycle in input(LIFECYCLE),
        rules in input(CORS),
        site in input(WEBSITE),
    ) {
        let _ = xml::parse_complete_multipart_upload(&complete);
        let _ = xml::parse_delete(&delete);
        let _ = xml::parse_create_bucket_configuration(&delete);
        let _ = xml::parse_tree(&complete);
        let _ = xml::lifecycle::parse_lifecycle(&lifecycle);
        let _ = cors::parse_cors_configuration(&rules);
        let _ = website::parse_website_configuration(&site);
    }

    #[test]
    fn authorization(
        auth in input(AUTH),
        query in input(QUERY),
        date in "[0-9TZ]{0,20}",
        sha in ".{0,70}",
    ) {
        let headers = vec![
            ("authorization".to_string(), text(&auth)),
            ("x-amz-date".to_string(), date.clone()),
            ("x-amz-content-sha256".to_string(), sha.clone()),
            ("host".to_string(), "127.0.0.1".to_string()),
        ];
        let query = text(&query);
        let input = AuthInput {
            method: "GET",
            raw_path: "/b/k%2",
            raw_query: &query,
            headers: &headers,
        };
        if let Ok(Some(parsed)) = sigv4::parse(&input) {
            let _ = sigv4::check_region(&parsed, "us-east-1");
        }
        let _ = sigv2::parse(&input);
        let _ = sigv4::PayloadMode::parse(&sha);
        let _ = sigv4::parse_amz_date(&date);
        let _ = sigv4::percent_decode(&query);
    }

    #[test]
    fn header_values(
        v in prop_oneof![".{0,80}", "[ -~]{0,80}", "bytes=[0-9,\\- ]{0,20}"],
        size in any::<u64>(),
    ) {
        let _ = objects::parse_range(&v, size);
        let _ = part_copy::parse_copy_range(&v, size);
        let _ = objects::parse_copy_source(&v);
        let _ = conditions::parse_http_date(&v);
        let _ = checksum::parse_content_md5(&v);
        let _ = checksum::parse_part_etag(&v);
        let _ = checksum::parse_algorithm(&v);
        if let Some(a) = checksum::parse_algorithm("CRC32C") {
            let _ = checksum::decode_checksum(a, &v);
        }
        let _ = crate::s3::acl::parse_canned(&v);
        let _ = policy::parse_policy(&v);
        let _ = uri_decode(&v);
    }
}

/// The valid samples the mutations start from do parse: the mutations reach past the
/// first byte of each parser.
#[test]
fn valid_samples_parse() {
    assert!(matches!(parse_head(&HEAD.concat()), Ok(Some(_))));
    assert!(xml::parse_complete_multipart_upload(&COMPLETE.concat()).is_ok());
    assert!(xml::parse_delete(&DELETE.concat()).is_ok());
    assert!(xml::lifecycle::parse_lifecycle(&LIFECYCLE.concat()).is_ok());
    assert!(cors::parse_cors_configuration(&CORS.concat()).is_ok());
    let site = website::parse_website_configuration(&WEBSITE.concat());
    assert!(site.is_ok(), "{site:?}");
    let mut d = ChunkedDecoder::new();
    let events = drive(&CHUNKED.concat(), &[], |b| {
        d.decode(b).map(|(n, e)| (n, e.is_some()))
    });
    assert!(events >= 3, "chunked sample: {events} events");
    let mut d = AwsChunkedDecoder::new();
    let events = drive(&AWS_CHUNKED.concat(), &[], |b| {
        d.decode(b).map(|(n, e)| (n, e.is_some()))
    });
    assert!(events >= 3, "aws-chunked sample: {events} events");
    let mut p = FormParser::new("XyZ");
    let events = drive(&FORM.concat(), &[], |b| {
        p.decode(b).map(|(n, e)| (n, e.is_some()))
    });
    assert!(events >= 4, "form sample: {events} events");
}
