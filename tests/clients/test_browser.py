"""A real browser: headless Chromium (Debian's `chromium`) loads a page from the website
listener, whose script uploads with a presigned POST to the S3 listener (another origin,
so CORS applies), reads the object back with a presigned GET, makes a preflighted PUT,
and tries to read from a bucket without CORS rules. The page writes what happened into
its DOM; the test reads it from `chromium --headless --dump-dom` (`--virtual-time-budget`
lets the page's fetches finish before the dump).

The presigned POST fields and URLs are made here with boto3 and written into the page."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import WEB_ROOT_DOMAIN
from helpers import REGION, unique

PAGE = Path(__file__).parent / "browser" / "upload.html"
CONTENT = "hello from chromium, across origins"


@pytest.fixture(scope="module")
def chromium():
    exe = shutil.which("chromium")
    assert exe, "chromium not found: run tools/install-test-deps.sh"
    return exe


@pytest.fixture
def s3v4(server):
    return boto3.session.Session().client(
        "s3", endpoint_url=server.endpoint, region_name=REGION,
        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))


@pytest.fixture
def buckets(s3):
    """A website bucket for the page, an upload bucket, a bucket without CORS rules."""
    names = {role: unique(role) for role in ("site", "uploads", "closed")}
    for name in names.values():
        s3.create_bucket(Bucket=name)
    yield names
    for name in names.values():
        for obj in s3.list_objects_v2(Bucket=name).get("Contents", []):
            s3.delete_object(Bucket=name, Key=obj["Key"])
        s3.delete_bucket(Bucket=name)


def run_page(chromium, server, s3, s3v4, buckets, tmp_path):
    """Publishes the page with fresh presigned requests, loads it, returns its result."""
    site, uploads, closed = buckets["site"], buckets["uploads"], buckets["closed"]
    s3.put_object(Bucket=closed, Key="private.txt", Body=b"not for browsers")
    config = {
        "post": s3v4.generate_presigned_post(uploads, "browser/${filename}"),
        "content": CONTENT,
        "get_url": s3v4.generate_presigned_url(
            "get_object", Params={"Bucket": uploads, "Key": "browser/from-browser.txt"}),
        "put_url": s3v4.generate_presigned_url(
            "put_object",
            Params={"Bucket": uploads, "Key": "browser/put.json",
                    "ContentType": "application/json"}),
        "closed_url": s3v4.generate_presigned_url(
            "get_object", Params={"Bucket": closed, "Key": "private.txt"}),
    }
    page = PAGE.read_text().replace("/*CONFIG*/null", json.dumps(config))
    s3.put_object(Bucket=site, Key="upload/index.html", Body=page.encode(),
                  ContentType="text/html; charset=utf-8")
    s3.put_bucket_website(Bucket=site,
                          WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}})
    url = f"http://{site}.{WEB_ROOT_DOMAIN}:{server.web_port}/upload/"
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    argv = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}",
        f"--host-resolver-rules=MAP *.{WEB_ROOT_DOMAIN} 127.0.0.1",
        "--virtual-time-budget=30000", "--dump-dom", url,
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    found = re.search(r'<pre id="result">RESULT (.*?)</pre>', proc.stdout, re.S)
    assert found, (f"the page did not finish (exit {proc.returncode})\n"
                   f"--- DOM ---\n{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-3000:]}")
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["origin"] == f"http://{site}.{WEB_ROOT_DOMAIN}:{server.web_port}"
    return result


def test_browser_uploads_across_origins_and_reads_back(chromium, server, s3, s3v4, buckets,
                                                       tmp_path):
    origin = f"http://{buckets['site']}.{WEB_ROOT_DOMAIN}:{server.web_port}"
    s3.put_bucket_cors(Bucket=buckets["uploads"], CORSConfiguration={"CORSRules": [{
        "AllowedOrigins": [origin],
        "AllowedMethods": ["GET", "PUT", "POST"],
        "AllowedHeaders": ["Content-Type"],
        "ExposeHeaders": ["ETag"],
    }]})
    result = run_page(chromium, server, s3, s3v4, buckets, tmp_path)
    stored = s3.get_object(Bucket=buckets["uploads"], Key="browser/from-browser.txt")
    assert stored["Body"].read() == CONTENT.encode()
    assert result["post_status"] == 204
    assert result["post_etag"] == stored["ETag"]  # exposed by the rule's ExposeHeader
    assert (result["get_status"], result["get_body"]) == (200, CONTENT)
    assert result["put_status"] == 200
    put = s3.get_object(Bucket=buckets["uploads"], Key="browser/put.json")
    assert json.loads(put["Body"].read()) == {"from": "browser"}
    assert put["ContentType"] == "application/json"
    # No rule on that bucket: the browser keeps the response from the script.
    assert result["closed_status"] == "blocked"


def test_browser_is_refused_what_the_rules_do_not_allow(chromium, server, s3, s3v4, buckets,
                                                        tmp_path):
    origin = f"http://{buckets['site']}.{WEB_ROOT_DOMAIN}:{server.web_port}"
    # GET and POST only, no allowed headers: the PUT's preflight is refused, so the PUT
    # itself is never sent.
    s3.put_bucket_cors(Bucket=buckets["uploads"], CORSConfiguration={"CORSRules": [{
        "AllowedOrigins": [origin], "AllowedMethods": ["GET", "POST"]}]})
    result = run_page(chromium, server, s3, s3v4, buckets, tmp_path)
    assert result["post_status"] == 204
    assert result["post_etag"] is None  # ETag not exposed by this rule
    assert (result["get_status"], result["get_body"]) == (200, CONTENT)
    assert result["put_status"] == "blocked"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=buckets["uploads"], Key="browser/put.json")
