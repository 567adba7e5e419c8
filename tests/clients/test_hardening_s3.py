"""Issue 25, found by outside testing: hostile or unusual requests that real clients (or a
hand-made request, where no client can send the case) must get S3's answer to, without
stalling the node, leaking bucket names or losing the connection.

Each test tells the bug it covers; each failed on the binary before the fix."""

import base64
import gzip
import hashlib
import hmac
import socket
import subprocess
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET

import boto3
import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import GranaryServer, granary_binary_path
from helpers import MiB, REGION, error_code, error_code_from_xml, unique
from web_helpers import web

GiB = 1024 * MiB


def signed(server, method, path, body=b"", headers=None, region=REGION):
    """A SigV4-signed request as botocore signs it (payload hash included), for cases
    boto3 cannot be made to send. `path` may carry a query string."""
    req = AWSRequest(method=method, url=f"{server.endpoint}{path}", data=body,
                     headers=dict(headers or {}))
    S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", region).add_auth(req)
    return req


def send(server, method, path, body=b"", headers=None, region=REGION, timeout=60):
    req = signed(server, method, path, body, headers, region)
    return requests.request(method, req.url, data=body, headers=dict(req.headers),
                            timeout=timeout)


def error_message(body):
    return ET.fromstring(body).findtext("Message")


def assert_s3_error(response, status, code):
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert error_code_from_xml(response.content) == code, response.content[:500]


def raw_head(server, method, path, headers):
    """A signed request head (no body), as bytes for a raw socket."""
    req = signed(server, method, path, headers=headers)
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{server.s3_port}"]
    lines += [f"{k}: {v}" for k, v in req.headers.items() if k.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock):
    """Status, lowercase headers and body of one response (by Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        assert chunk, "closed in the middle of the body"
        body += chunk
    return int(lines[0].split()[1]), headers, body


# ------------------------------------------------------------------------------- XML


def test_xml_with_many_attributes_is_refused_without_stalling_the_node(server, s3, bucket):
    """B: quick-xml's duplicate-attribute check is quadratic; four DeleteObjects bodies of
    one element with 150,000 attributes froze the node for minutes. Sent on four
    connections (both shards), they must be refused as MalformedXML while a good client's
    GET still answers."""
    s3.put_object(Bucket=bucket, Key="probe", Body=b"still here")
    attributes = "".join(f' a{i}="v"' for i in range(150_000))
    body = f"<Delete{attributes}><Object><Key>x</Key></Object></Delete>".encode()
    assert 1.5 * MiB < len(body) < 2 * MiB
    answers = []

    def hostile():
        answers.append(send(server, "POST", f"/{bucket}?delete", body, timeout=300))

    threads = [threading.Thread(target=hostile) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    good = server.client(retries=0, connect_timeout=5, read_timeout=20)
    assert good.get_object(Bucket=bucket, Key="probe")["Body"].read() == b"still here"
    for t in threads:
        t.join(300)
    assert len(answers) == 4
    for r in answers:
        assert_s3_error(r, 400, "MalformedXML")


def test_oversized_xml_body_gets_its_error_not_a_reset(server, bucket):
    """11: a body over the XML limit (2 MiB) was answered, then the connection closed with
    the rest of the body unread: the client, still sending, got a TCP reset. Now the error
    comes at once, the server reads and discards what follows (within bounds) and closes
    cleanly: the whole body goes out, the answer is read, then end of stream."""
    body = b"<Delete>" + b" " * (16 * MiB) + b"</Delete>"
    head = raw_head(server, "POST", f"/{bucket}?delete", {"Content-Length": str(len(body))})
    with socket.create_connection(("127.0.0.1", server.s3_port), timeout=30) as sock:
        sock.sendall(head + body)
        status, headers, answer = read_response(sock)
        assert (status, error_code_from_xml(answer)) == (400, "MaxMessageLengthExceeded")
        assert headers.get("connection") == "close"
        assert sock.recv(1) == b""


def test_delete_objects_limits(server, s3, bucket):
    """12: `<Delete></Delete>` was accepted, a key over 1,024 bytes was reported deleted,
    and a NUL key was echoed as `&#x0;`, which is no XML 1.0. S3 caps a request at 1,000
    keys."""
    s3.put_object(Bucket=bucket, Key="keep", Body=b"k")
    for empty in [b"<Delete></Delete>", b"<Delete><Quiet>true</Quiet></Delete>"]:
        assert_s3_error(send(server, "POST", f"/{bucket}?delete", empty), 400, "MalformedXML")

    long_key = "k" * 1025
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": long_key},
                                                               {"Key": "keep"}]})
    assert [d["Key"] for d in out.get("Deleted", [])] == ["keep"]
    assert [(e["Key"], e["Code"]) for e in out["Errors"]] == [(long_key, "KeyTooLongError")]

    nul = b"<Delete><Object><Key>a&#x0;b</Key></Object></Delete>"
    r = send(server, "POST", f"/{bucket}?delete", nul)
    assert_s3_error(r, 400, "MalformedXML")
    assert b"&#x0;" not in r.content and b"\x00" not in r.content

    keys = [{"Key": f"k{i}"} for i in range(1001)]
    with pytest.raises(ClientError) as e:
        s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    assert error_code(e) == "MalformedXML"
    assert len(s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[:1000]})["Deleted"]) \
        == 1000


# --------------------------------------------------------------------------- listing


def test_max_keys_zero_is_an_empty_page_not_truncated(s3, bucket):
    """3: `max-keys=0` answered IsTruncated=true; S3 answers an empty, complete page."""
    for k in ["a", "b"]:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    v2 = s3.list_objects_v2(Bucket=bucket, MaxKeys=0)
    assert (v2["IsTruncated"], v2["KeyCount"], v2.get("Contents")) == (False, 0, None)
    v1 = s3.list_objects(Bucket=bucket, MaxKeys=0)
    assert (v1["IsTruncated"], v1.get("Contents")) == (False, None)


def test_list_buckets_pages_with_max_buckets_prefix_and_continuation(server, s3):
    """4: ListBuckets ignored `max-buckets`, `continuation-token` and `prefix`, which
    current SDKs send (S3 pages bucket lists since 2024)."""
    prefix = unique("lb")
    names = [f"{prefix}-{i}" for i in range(3)]
    for n in names:
        s3.create_bucket(Bucket=n)
    try:
        first = s3.list_buckets(Prefix=prefix, MaxBuckets=2)
        assert [b["Name"] for b in first["Buckets"]] == names[:2]
        assert first["Prefix"] == prefix and first["ContinuationToken"]
        second = s3.list_buckets(Prefix=prefix, MaxBuckets=2,
                                 ContinuationToken=first["ContinuationToken"])
        assert [b["Name"] for b in second["Buckets"]] == names[2:]
        assert "ContinuationToken" not in second
        pages = s3.get_paginator("list_buckets").paginate(
            Prefix=prefix, PaginationConfig={"PageSize": 1})
        assert [b["Name"] for p in pages for b in p["Buckets"]] == names
        everything = s3.list_buckets()
        assert set(names) <= {b["Name"] for b in everything["Buckets"]}
        assert "ContinuationToken" not in everything
        loose = server.client(parameter_validation=False, retries=0)
        for bad in [0, 10001]:
            with pytest.raises(ClientError) as e:
                loose.list_buckets(MaxBuckets=bad)
            assert error_code(e) == "InvalidArgument", bad
    finally:
        for n in names:
            s3.delete_bucket(Bucket=n)


# ------------------------------------------------------------------- bodies and heads


def test_gzip_aws_chunked_content_encoding_on_a_plain_body(s3, bucket):
    """5: `Content-Encoding: gzip, aws-chunked` on a body that is not streamed (boto3 over
    HTTP signs the payload hash) was decoded as aws-chunked: 400 IncompleteBody. The
    framing follows x-amz-content-sha256; aws-chunked is not stored."""
    data = gzip.compress(b"compressed text " * 200)
    s3.put_object(Bucket=bucket, Key="gz", Body=data, ContentEncoding="gzip, aws-chunked")
    got = s3.get_object(Bucket=bucket, Key="gz")
    assert got["ContentEncoding"] == "gzip"
    assert got["Body"].read() == data


@pytest.mark.parametrize("upload_part", [False, True], ids=["put-object", "upload-part"])
def test_content_length_over_5_gib_is_refused_before_the_body(server, s3, bucket, upload_part):
    """10: a Content-Length over 5 GiB (S3's single PUT and part limit) was not refused up
    front: the server waited for a body it would refuse. S3 answers EntityTooLarge at once
    and closes. Only the head is sent here."""
    path = f"/{bucket}/huge"
    if upload_part:
        upload = s3.create_multipart_upload(Bucket=bucket, Key="huge")["UploadId"]
        path += f"?partNumber=1&uploadId={urllib.parse.quote(upload)}"
    head = raw_head(server, "PUT", path, {"Content-Length": str(5 * GiB + 1)})
    with socket.create_connection(("127.0.0.1", server.s3_port), timeout=10) as sock:
        sock.sendall(head)
        status, headers, body = read_response(sock)
    assert (status, error_code_from_xml(body)) == (400, "EntityTooLarge"), body
    assert headers.get("connection") == "close"


# ------------------------------------------------------------------------ signatures


def test_date_header_in_the_minus_0000_form_is_accepted(server, s3, bucket):
    """6: botocore, told to sign with `Date` instead of `X-Amz-Date`, sends an RFC 2822
    date in the `-0000` zone; it was refused as missing."""
    s3.put_object(Bucket=bucket, Key="dated", Body=b"dated body")
    req = AWSRequest(method="GET", url=f"{server.endpoint}/{bucket}/dated",
                     headers={"Date": "replaced by the signer"})
    S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", REGION).add_auth(req)
    assert req.headers["Date"].endswith(" -0000") and "X-Amz-Date" not in req.headers
    r = requests.get(req.url, headers=dict(req.headers), timeout=30)
    assert (r.status_code, r.content) == (200, b"dated body"), r.content


def v4_client(server, region=REGION):
    return boto3.session.Session().client(
        "s3", endpoint_url=server.endpoint, region_name=region,
        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                      retries={"total_max_attempts": 1}))


def test_presigned_url_with_expires_zero_is_expired(server, s3, bucket):
    """7: `X-Amz-Expires=0` was accepted within the second it was signed."""
    s3.put_object(Bucket=bucket, Key="e", Body=b"x")
    url = v4_client(server).generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "e"}, ExpiresIn=0)
    assert "X-Amz-Expires=0" in url
    r = requests.get(url, timeout=30)
    assert_s3_error(r, 403, "AccessDenied")
    assert error_message(r.content) == "Request has expired"


def test_credential_scope_of_another_region_is_refused(server, s3, bucket):
    """13: a request signed for eu-west-1 was accepted by a us-east-1 node. AWS answers
    400 and names the region it expects (AuthorizationHeaderMalformed for the header form,
    AuthorizationQueryParametersError for a presigned URL)."""
    s3.put_object(Bucket=bucket, Key="r", Body=b"regional")
    r = send(server, "GET", f"/{bucket}/r", region="eu-west-1")
    assert_s3_error(r, 400, "AuthorizationHeaderMalformed")
    assert "expecting 'us-east-1'" in error_message(r.content)
    url = v4_client(server, "eu-west-1").generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "r"}, ExpiresIn=60)
    r = requests.get(url, timeout=30)
    assert_s3_error(r, 400, "AuthorizationQueryParametersError")
    assert "expecting 'us-east-1'" in error_message(r.content)
    # The node's own region still works, for both forms.
    assert send(server, "GET", f"/{bucket}/r").content == b"regional"
    url = v4_client(server).generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "r"}, ExpiresIn=60)
    assert requests.get(url, timeout=30).content == b"regional"


def sigv2_url(server, bucket, key, expires):
    to_sign = f"GET\n\n\n{expires}\n/{bucket}/{key}".encode()
    mac = hmac.new(server.secret_key.encode(), to_sign, hashlib.sha1).digest()
    query = urllib.parse.urlencode({"AWSAccessKeyId": server.access_key, "Expires": expires,
                                    "Signature": base64.b64encode(mac).decode()})
    return f"{server.endpoint}/{bucket}/{key}?{query}"


def test_sigv2_presigned_url_lives_at_most_seven_days(server, s3, bucket):
    """13: a SigV2 presigned URL (absolute `Expires`) had no maximum lifetime: one valid
    for ten years was accepted. Capped at seven days from now, as SigV4's."""
    s3.put_object(Bucket=bucket, Key="v2", Body=b"old style")
    now = int(time.time())
    assert requests.get(sigv2_url(server, bucket, "v2", now + 3600), timeout=30).content \
        == b"old style"
    r = requests.get(sigv2_url(server, bucket, "v2", now + 10 * 365 * 86400), timeout=30)
    assert_s3_error(r, 403, "AccessDenied")


# ----------------------------------------------------------------- anonymous callers


def test_anonymous_requests_do_not_tell_which_buckets_exist(server, s3, bucket):
    """14: a CORS preflight, a website GET and a form POST answered differently for an
    existing bucket and a missing one, although the docs say names do not leak."""
    missing = unique("no-such-bucket")
    s3.put_object(Bucket=bucket, Key="doc", Body=b"private")

    def preflight(name):
        return requests.options(f"{server.endpoint}/{name}/doc", timeout=30, headers={
            "Origin": "http://app.granary.test", "Access-Control-Request-Method": "GET"})

    def form_post(name):
        return requests.post(f"{server.endpoint}/{name}", data={"key": "up"},
                             files={"file": ("f.txt", b"data")}, timeout=30)

    for ask in [preflight, form_post]:
        existing, absent = ask(bucket), ask(missing)
        assert existing.status_code == absent.status_code == 403, ask.__name__
        assert error_code_from_xml(existing.content) == error_code_from_xml(absent.content)
    existing, absent = web(server, bucket, "/doc"), web(server, missing, "/doc")
    assert existing.status == absent.status == 404
    assert b"NoSuchWebsiteConfiguration" in existing.body
    assert b"NoSuchWebsiteConfiguration" in absent.body


# ---------------------------------------------------------------------- the binary


def test_logs_to_a_file_carry_no_colour_codes(tmp_path):
    """8: logs carried ANSI colour codes when stdout was not a terminal (a file,
    journald): colour only on a terminal."""
    srv = GranaryServer(granary_binary_path(), tmp_path)
    srv.start()
    try:
        srv.client().list_buckets()
    finally:
        srv.stop()
    log = srv.log_path.read_bytes()
    assert b"INFO" in log, log[-2000:]
    assert b"\x1b[" not in log, log[-2000:]


def test_server_help_describes_print_config():
    """9: `granary server --help` showed a code comment ("Boxed: the flags are many…") as
    the help of --print-config."""
    out = subprocess.run([str(granary_binary_path()), "server", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Boxed" not in out.stdout
    line = next(l for l in out.stdout.splitlines() if "--print-config" in l)
    index = out.stdout.splitlines().index(line)
    text = " ".join(out.stdout.splitlines()[index:index + 2])
    assert "Print the effective configuration" in text, text
