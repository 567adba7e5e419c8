"""aws-chunked uploads, framed as boto3 (over HTTPS) and the AWS SDK for Rust frame them.

Over plain HTTP boto3 signs the payload instead, so the suite builds these bodies itself,
following the shapes captured in shared/wire: chunk signatures are computed here in
Python, independently of the server's Rust signer, with botocore signing the head.
"""

import base64
import hashlib
import hmac
import http.client
import os
import zlib

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from helpers import error_code_from_xml

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
CHUNK = 64 * 1024


def _crc32_b64(data):
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _signing_key(secret, date, region="us-east-1"):
    k = _hmac(("AWS4" + secret).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, "s3")
    return _hmac(k, "aws4_request")


def _signed_head(server, method, path, headers):
    url = f"{server.endpoint}{path}"
    req = AWSRequest(method=method, url=url, headers=headers)
    SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", "us-east-1").add_auth(req)
    return dict(req.headers.items())


def _send(server, path, headers, body, http_chunked=False):
    conn = http.client.HTTPConnection("127.0.0.1", server.s3_port, timeout=30)
    conn.putrequest("PUT", path, skip_accept_encoding=True)
    for k, v in headers.items():
        conn.putheader(k, v)
    if http_chunked:
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for i in range(0, len(body), 100_000):
            piece = body[i:i + 100_000]
            conn.send(b"%x\r\n" % len(piece) + piece + b"\r\n")
        conn.send(b"0\r\n\r\n")
    else:
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        conn.send(body)
    resp = conn.getresponse()
    return resp.status, dict(resp.getheaders()), resp.read()


def _unsigned_trailer_body(data, checksum):
    out = b""
    for i in range(0, len(data), CHUNK):
        piece = data[i:i + CHUNK]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return out + b"0\r\n" + f"x-amz-checksum-crc32:{checksum}\r\n\r\n".encode()


def test_unsigned_payload_trailer_in_http_chunked_like_boto3_over_https(server, bucket):
    data = os.urandom(300_000)
    headers = {
        "Content-Encoding": "aws-chunked",
        "X-Amz-Trailer": "x-amz-checksum-crc32",
        "X-Amz-Decoded-Content-Length": str(len(data)),
        "x-amz-sdk-checksum-algorithm": "CRC32",
        "X-Amz-Content-SHA256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    }
    signed = _signed_head(server, "PUT", f"/{bucket}/trailer", headers)
    status, resp_headers, body = _send(
        server, f"/{bucket}/trailer", signed, _unsigned_trailer_body(data, _crc32_b64(data)),
        http_chunked=True,
    )
    assert status == 200, body
    assert resp_headers["ETag"].strip('"') == hashlib.md5(data).hexdigest()
    got = server.client().get_object(Bucket=bucket, Key="trailer")["Body"].read()
    assert got == data

    # A trailer that does not match the bytes is refused and stores nothing.
    status, _, body = _send(
        server, f"/{bucket}/bad-trailer", signed,
        _unsigned_trailer_body(data, _crc32_b64(b"other")), http_chunked=True,
    )
    assert status in (400, 403), body


def test_http_chunked_pieces_that_straddle_block_ends_are_stored_whole(server, bucket):
    # 100,000-byte chunks: a decoded piece runs over a 1 MiB block's end, and what runs over
    # begins the next block.
    data = os.urandom(2 * 1024 * 1024 + 54_321)
    headers = {"X-Amz-Content-SHA256": hashlib.sha256(data).hexdigest()}
    signed = _signed_head(server, "PUT", f"/{bucket}/straddle", headers)
    status, resp_headers, body = _send(server, f"/{bucket}/straddle", signed, data,
                                       http_chunked=True)
    assert status == 200, body
    assert resp_headers["ETag"].strip('"') == hashlib.md5(data).hexdigest()
    assert server.client().get_object(Bucket=bucket, Key="straddle")["Body"].read() == data


def _signed_chunks(server, bucket, key, data, trailer=False, tamper_chunk=None,
                   tamper_trailer=False):
    algo = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" if trailer else (
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    pieces = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)] + [b""]
    headers = {
        "Content-Encoding": "aws-chunked",
        "X-Amz-Decoded-Content-Length": str(len(data)),
        "X-Amz-Content-SHA256": algo,
    }
    checksum = _crc32_b64(data)
    trailer_line = f"x-amz-checksum-crc32:{checksum}"
    if trailer:
        headers["X-Amz-Trailer"] = "x-amz-checksum-crc32"
    signed = _signed_head(server, "PUT", f"/{bucket}/{key}", headers)
    auth = signed["Authorization"]
    seed = auth.rsplit("Signature=", 1)[1]
    amz_date = signed["X-Amz-Date"]
    scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/", 1)[1]
    key_bytes = _signing_key(server.secret_key, amz_date[:8])
    prev = seed
    body = b""
    for n, piece in enumerate(pieces):
        to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, EMPTY_SHA256,
                             hashlib.sha256(piece).hexdigest()])
        sig = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
        prev = sig
        if tamper_chunk == n:
            sig = ("0" if sig[0] != "0" else "1") + sig[1:]
        body += b"%x;chunk-signature=%s\r\n" % (len(piece), sig.encode()) + piece
        # The final chunk of a stream with trailers is followed by them directly (as
        # the Rust SDK sends it); every other chunk ends with CRLF.
        if piece or not trailer:
            body += b"\r\n"
    if trailer:
        canonical = (trailer_line + "\n").encode()
        to_sign = "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, prev,
                             hashlib.sha256(canonical).hexdigest()])
        tsig = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
        if tamper_trailer:
            tsig = ("0" if tsig[0] != "0" else "1") + tsig[1:]
        body += f"{trailer_line}\r\nx-amz-trailer-signature:{tsig}\r\n\r\n".encode()
    return signed, body


def test_signed_streaming_chunks_like_the_rust_sdk(server, bucket):
    data = os.urandom(3 * CHUNK + 1234)
    headers, body = _signed_chunks(server, bucket, "signed", data)
    status, resp_headers, text = _send(server, f"/{bucket}/signed", headers, body)
    assert status == 200, text
    assert server.client().get_object(Bucket=bucket, Key="signed")["Body"].read() == data


def test_signed_streaming_with_signed_trailer(server, bucket):
    data = os.urandom(2 * CHUNK + 99)
    headers, body = _signed_chunks(server, bucket, "signed-trailer", data, trailer=True)
    status, resp_headers, text = _send(server, f"/{bucket}/signed-trailer", headers, body)
    assert status == 200, text
    assert resp_headers.get("x-amz-checksum-crc32") == _crc32_b64(data)
    assert server.client().get_object(Bucket=bucket, Key="signed-trailer")["Body"].read() == data


def test_a_tampered_chunk_signature_is_refused_and_nothing_is_stored(server, bucket):
    data = os.urandom(3 * CHUNK)
    headers, body = _signed_chunks(server, bucket, "tampered", data, tamper_chunk=1)
    status, _, text = _send(server, f"/{bucket}/tampered", headers, body)
    assert status == 403, text
    assert error_code_from_xml(text) == "SignatureDoesNotMatch"
    s3 = server.client()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert "tampered" not in keys


def test_a_tampered_trailer_signature_is_refused(server, bucket):
    data = os.urandom(CHUNK + 5)
    headers, body = _signed_chunks(server, bucket, "bad-tsig", data, trailer=True,
                                   tamper_trailer=True)
    status, _, text = _send(server, f"/{bucket}/bad-tsig", headers, body)
    assert status == 403, text
    assert error_code_from_xml(text) == "SignatureDoesNotMatch"


def test_bytes_after_the_end_of_an_aws_chunked_body_are_refused(server, bucket):
    data = os.urandom(1000)
    headers, body = _signed_chunks(server, bucket, "trailing", data)
    status, _, text = _send(server, f"/{bucket}/trailing", headers, body + b"garbage\r\n")
    assert status == 400, text
