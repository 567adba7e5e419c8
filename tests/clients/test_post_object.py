"""POST Object (browser form uploads): policies signed by boto3's
`generate_presigned_post` (SigV4 with `signature_version="s3v4"`, V2 by default), the
multipart/form-data body built by `requests` as an HTML form would send it.

What a user relies on: the file lands under the key of the form (`${filename}`
substituted), with the form's Content-Type and metadata; the success status or redirect
asked for; and every refusal S3 makes, with S3's code: expired policy, key outside the
policy's prefix, size outside content-length-range, bad signature, unknown key, a field
the policy does not cover, a policy for another bucket, a key without write access."""

import hashlib
import os
import re
import threading
import time
import urllib.parse

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from helpers import REGION, MiB, error_code_from_xml, unique
from web_helpers import admin


def v4_client(server, access_key=None, secret_key=None):
    return boto3.session.Session().client(
        "s3", endpoint_url=server.endpoint, region_name=REGION,
        aws_access_key_id=access_key or server.access_key,
        aws_secret_access_key=secret_key or server.secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))


@pytest.fixture
def s3v4(server):
    return v4_client(server)


def post(presigned, content=b"hello form", filename="hello.txt", content_type=None,
         extra=None, **kwargs):
    fields = dict(presigned["fields"])
    fields.update(extra or {})
    file = (filename, content) if content_type is None else (filename, content, content_type)
    return requests.post(presigned["url"], data=fields, files={"file": file}, timeout=120,
                         allow_redirects=False, **kwargs)


def assert_refused(response, status, code):
    assert response.status_code == status, response.text
    assert error_code_from_xml(response.content) == code, response.text


def assert_absent(s3, bucket, key):
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_upload_with_filename_substitution(s3, s3v4, bucket):
    p = s3v4.generate_presigned_post(bucket, "uploads/${filename}")
    assert p["fields"]["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    r = post(p, b"first upload", filename="notes.txt", content_type="text/plain")
    assert r.status_code == 204, r.text
    got = s3.get_object(Bucket=bucket, Key="uploads/notes.txt")
    assert got["Body"].read() == b"first upload"
    assert got["ContentType"] == "text/plain"
    assert r.headers["ETag"] == got["ETag"]


def test_success_status_201_answers_with_post_response(s3, s3v4, bucket):
    p = s3v4.generate_presigned_post(
        bucket, "doc.bin",
        Fields={"success_action_status": "201", "Content-Type": "application/x-doc",
                "x-amz-meta-owner": "alice"},
        Conditions=[{"success_action_status": "201"},
                    ["starts-with", "$Content-Type", "application/"],
                    {"x-amz-meta-owner": "alice"}])
    r = post(p, b"\x00\x01binary")
    assert r.status_code == 201, r.text
    assert re.search(r"<Key>doc\.bin</Key>", r.text)
    assert re.search(f"<Bucket>{bucket}</Bucket>", r.text)
    head = s3.head_object(Bucket=bucket, Key="doc.bin")
    assert head["ContentType"] == "application/x-doc"
    assert head["Metadata"] == {"owner": "alice"}
    assert re.search("<ETag>&quot;" + head["ETag"].strip('"') + "&quot;</ETag>", r.text)


def test_success_status_200_and_redirect(s3v4, bucket):
    p = s3v4.generate_presigned_post(bucket, "a.txt", Fields={"success_action_status": "200"},
                                     Conditions=[{"success_action_status": "200"}])
    r = post(p)
    assert r.status_code == 200 and r.content == b""
    target = "http://app.granary.test/done?x=1"
    p = s3v4.generate_presigned_post(bucket, "b.txt",
                                     Fields={"success_action_redirect": target},
                                     Conditions=[{"success_action_redirect": target}])
    r = post(p)
    assert r.status_code == 303
    location = urllib.parse.urlsplit(r.headers["Location"])
    query = urllib.parse.parse_qs(location.query)
    assert location.netloc == "app.granary.test" and location.path == "/done"
    assert query["x"] == ["1"] and query["bucket"] == [bucket] and query["key"] == ["b.txt"]
    assert query["etag"][0].strip('"') == hashlib.md5(b"hello form").hexdigest()


def test_v2_signed_policy_from_boto3_defaults(s3, bucket):
    p = s3.generate_presigned_post(bucket, "v2/${filename}")
    assert "signature" in p["fields"] and "AWSAccessKeyId" in p["fields"]
    r = post(p, b"v2 form", filename="v2.txt")
    assert r.status_code == 204, r.text
    assert s3.get_object(Bucket=bucket, Key="v2/v2.txt")["Body"].read() == b"v2 form"


def test_large_file_streams_into_blocks(s3, s3v4, bucket, tmp_path):
    data = os.urandom(24 * MiB + 7)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    p = s3v4.generate_presigned_post(bucket, "big/${filename}",
                                     Conditions=[["content-length-range", 1, 32 * MiB]])
    with open(path, "rb") as f:
        r = requests.post(p["url"], data=p["fields"], files={"file": ("big.bin", f)},
                          timeout=300)
    assert r.status_code == 204, r.text
    got = s3.get_object(Bucket=bucket, Key="big/big.bin")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def rss_bytes(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_huge_form_streams_without_buffering_the_file(server, s3v4, bucket):
    """A 256 MiB file sent as a chunked form body: the server's memory stays far below
    the file's size while it streams (sampled during the upload), and the stored object
    is the file (its MD5 is the ETag)."""
    size, piece = 256 * MiB, MiB
    p = s3v4.generate_presigned_post(bucket, "huge.bin")
    boundary = "granary-test-" + os.urandom(8).hex()
    md5 = hashlib.md5()

    def body():
        for name, value in p["fields"].items():
            yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                   f"{value}\r\n").encode()
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
               f"filename=\"huge.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
               ).encode()
        for _ in range(size // piece):
            data = os.urandom(piece)
            md5.update(data)
            yield data
        yield f"\r\n--{boundary}--\r\n".encode()

    pid = server.proc.pid
    baseline = rss_bytes(pid)
    peak = [baseline]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_bytes(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        r = requests.post(p["url"], data=body(), timeout=600,
                          headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    finally:
        stop.set()
        sampler.join()
    assert r.status_code == 204, r.text
    assert r.headers["ETag"].strip('"') == md5.hexdigest()
    grown = peak[0] - baseline
    print(f"server RSS: {baseline / MiB:.0f} MiB before, peak {peak[0] / MiB:.0f} MiB")
    assert grown < 96 * MiB, f"server memory grew by {grown / MiB:.0f} MiB during the upload"


def test_expired_policy_is_refused(s3, s3v4, bucket):
    p = s3v4.generate_presigned_post(bucket, "late.txt", ExpiresIn=-60)
    r = post(p)
    assert_refused(r, 403, "AccessDenied")
    assert "expired" in r.text
    assert_absent(s3, bucket, "late.txt")


def test_key_outside_the_policy_prefix_is_refused(s3, s3v4, bucket):
    p = s3v4.generate_presigned_post(bucket, "users/alice/${filename}")
    r = post(p, extra={"key": "users/bob/x.txt"})
    assert_refused(r, 403, "AccessDenied")
    assert_absent(s3, bucket, "users/bob/x.txt")


def test_sizes_outside_content_length_range_are_refused(s3, s3v4, bucket):
    p = s3v4.generate_presigned_post(bucket, "sized.bin",
                                     Conditions=[["content-length-range", 10, 1000]])
    assert_refused(post(p, os.urandom(1001)), 400, "EntityTooLarge")
    assert_refused(post(p, b"tiny"), 400, "EntityTooSmall")
    assert_absent(s3, bucket, "sized.bin")
    assert post(p, os.urandom(1000)).status_code == 204


def test_bad_signature_is_refused(server, s3, s3v4, bucket):
    p = s3v4.generate_presigned_post(bucket, "forged.txt")
    sig = p["fields"]["x-amz-signature"]
    forged = ("0" if sig[0] != "0" else "1") + sig[1:]
    assert_refused(post(p, extra={"x-amz-signature": forged}), 403, "SignatureDoesNotMatch")
    # A policy changed after signing (here: a wider prefix) breaks the signature too.
    other = s3v4.generate_presigned_post(bucket, "${filename}")
    r = post(p, extra={"policy": other["fields"]["policy"]})
    assert_refused(r, 403, "SignatureDoesNotMatch")
    v4 = v4_client(server, secret_key="wrong-secret-key-wrong-secret-key-wrong0")
    assert_refused(post(v4.generate_presigned_post(bucket, "forged.txt")), 403,
                   "SignatureDoesNotMatch")
    assert_absent(s3, bucket, "forged.txt")


def test_unknown_key_extra_field_and_other_bucket_are_refused(server, s3, s3v4, bucket):
    stranger = v4_client(server, access_key="GKNOSUCHKEY000000000",
                         secret_key="x" * 40).generate_presigned_post(bucket, "k.txt")
    assert_refused(post(stranger), 403, "InvalidAccessKeyId")
    p = s3v4.generate_presigned_post(bucket, "k.txt")
    r = post(p, extra={"x-amz-meta-sneaky": "1"})
    assert_refused(r, 403, "AccessDenied")
    assert "Extra input fields" in r.text
    other = unique("post-other")
    s3.create_bucket(Bucket=other)
    try:
        # A policy signed for `bucket`, posted to `other`.
        moved = dict(p, url=f"{server.endpoint}/{other}")
        assert_refused(post(moved), 403, "AccessDenied")
        assert_absent(s3, other, "k.txt")
    finally:
        s3.delete_bucket(Bucket=other)
    assert_absent(s3, bucket, "k.txt")


def test_key_without_write_permission_is_refused(server, s3, bucket):
    info = admin(server, "key", "create", unique("poster"))
    key_id, secret = info["access_key_id"], info["secret_access_key"]
    try:
        client = v4_client(server, access_key=key_id, secret_key=secret)
        p = client.generate_presigned_post(bucket, "nope.txt")
        assert_refused(post(p), 403, "AccessDenied")
        assert_absent(s3, bucket, "nope.txt")
        admin(server, "bucket", "allow", bucket, "--key", key_id, "--write")
        assert post(p).status_code == 204
    finally:
        admin(server, "key", "delete", key_id)


def test_malformed_forms_are_refused(server, s3v4, bucket):
    p = s3v4.generate_presigned_post(bucket, "m.txt")
    # No file part at all.
    r = requests.post(p["url"], files={k: (None, v) for k, v in p["fields"].items()},
                      timeout=60)
    assert_refused(r, 400, "IncorrectNumberOfFilesInPostRequest")
    # Fields before the file larger than the limit.
    r = post(p, extra={"x-ignore-padding": "p" * (128 * 1024)})
    assert_refused(r, 400, "MaxPostPreDataLengthExceededError")
    # Not multipart at all, and a body cut short: never a hang or a dropped connection.
    r = requests.post(p["url"], data=b"junk", timeout=60,
                      headers={"Content-Type": "multipart/form-data; boundary=zz"})
    assert_refused(r, 400, "MalformedPOSTRequest")
    # An anonymous form (no policy) is refused.
    r = requests.post(p["url"], data={"key": "anon.txt"}, files={"file": ("a", b"a")},
                      timeout=60)
    assert_refused(r, 403, "AccessDenied")


def test_post_response_carries_cors_headers(s3, s3v4, bucket):
    origin = "http://app.granary.test"
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": [origin], "AllowedMethods": ["POST"]}]})
    p = s3v4.generate_presigned_post(bucket, "cors.txt")
    r = post(p, headers={"Origin": origin})
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == origin
    r = post(p, headers={"Origin": "http://elsewhere.test"})
    assert r.status_code == 204 and "Access-Control-Allow-Origin" not in r.headers


def test_curl_form_upload_with_expect_continue(s3, s3v4, bucket, tmp_path):
    """curl -F builds the form itself and, for a body over 1 MiB, waits for
    `100 Continue` before sending it."""
    from web_helpers import curl
    data = os.urandom(3 * MiB)
    path = tmp_path / "photo 1.jpg"
    path.write_bytes(data)
    p = s3v4.generate_presigned_post(bucket, "curl/${filename}",
                                     Fields={"Content-Type": "image/jpeg"},
                                     Conditions=[["starts-with", "$Content-Type", "image/"]])
    args = []
    for name, value in p["fields"].items():
        args += ["--form-string", f"{name}={value}"]
    r = curl(*args, "-F", f"file=@{path}", p["url"])
    assert r.status == 204, r.body
    got = s3.get_object(Bucket=bucket, Key="curl/photo 1.jpg")
    assert got["ContentType"] == "image/jpeg"
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(data).digest()
