"""Static websites: buckets served on the website listener (`--web-addr`), chosen by the
Host header, fetched with curl. The configuration is made with boto3
(Put/Get/DeleteBucketWebsite) and with `granary bucket website --allow|--deny`.

What a user relies on: the index document for `/` and for directories, a redirect from
`dir` to `dir/`, the error document with status 404 (a plain HTML 404 without one),
ranges and conditional GETs as on GetObject, large objects streamed whole, and nothing
served from a bucket that is not a website."""

import hashlib
import os

import pytest
from botocore.exceptions import ClientError

from helpers import MiB, error_code
from web_helpers import admin, web

INDEX = b"<html><body><h1>home</h1></body></html>"
DOCS_INDEX = b"<html><body><h1>docs</h1></body></html>"
ERROR_PAGE = b"<html><body><h1>not here</h1></body></html>"


@pytest.fixture
def site(s3, bucket):
    """A bucket with an index, a directory index, an error page, served as a website."""
    html = {"ContentType": "text/html"}
    s3.put_object(Bucket=bucket, Key="index.html", Body=INDEX, **html)
    s3.put_object(Bucket=bucket, Key="docs/index.html", Body=DOCS_INDEX, **html)
    s3.put_object(Bucket=bucket, Key="errors/404.html", Body=ERROR_PAGE, **html)
    s3.put_object(Bucket=bucket, Key="style.css", Body=b"body{}", ContentType="text/css")
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration={
        "IndexDocument": {"Suffix": "index.html"},
        "ErrorDocument": {"Key": "errors/404.html"},
    })
    return bucket


def test_index_document_answers_the_root_and_directories(server, site):
    r = web(server, site, "/")
    assert (r.status, r.body) == (200, INDEX)
    assert r.header("content-type") == "text/html"
    r = web(server, site, "/docs/")
    assert (r.status, r.body) == (200, DOCS_INDEX)
    r = web(server, site, "/style.css")
    assert (r.status, r.body, r.header("content-type")) == (200, b"body{}", "text/css")
    # A directory named without its slash is redirected to it, as AWS does.
    r = web(server, site, "/docs")
    assert r.status == 302 and r.header("location") == "/docs/"
    r = web(server, site, "/docs", "-L")
    assert (r.status, r.body) == (200, DOCS_INDEX)



def test_keys_with_spaces_and_unicode(server, s3, site):
    s3.put_object(Bucket=site, Key="my docs/café.html", Body=b"accents", ContentType="text/html")
    s3.put_object(Bucket=site, Key="my docs/index.html", Body=b"spaced index")
    r = web(server, site, "/my%20docs/caf%C3%A9.html")
    assert (r.status, r.body) == (200, b"accents")
    r = web(server, site, "/my%20docs/")
    assert (r.status, r.body) == (200, b"spaced index")


def test_missing_key_gets_the_error_document_with_404(server, site):
    for path in ["/nothing.html", "/no/such/dir/", "/docs/missing"]:
        r = web(server, site, path)
        assert (r.status, r.body) == (404, ERROR_PAGE), path
        assert r.header("content-type") == "text/html"
    # HEAD: the same status and length, no body.
    r = web(server, site, "/nothing.html", "-I")
    assert r.status == 404 and r.header("content-length") == str(len(ERROR_PAGE))


def test_without_error_document_a_plain_404(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="index.html", Body=INDEX, ContentType="text/html")
    s3.put_bucket_website(Bucket=bucket,
                          WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}})
    r = web(server, bucket, "/missing")
    assert r.status == 404
    assert r.header("content-type").startswith("text/html")
    assert b"NoSuchKey" in r.body and b"<html>" in r.body
    # A configured but missing error document: a plain 404 too.
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration={
        "IndexDocument": {"Suffix": "index.html"}, "ErrorDocument": {"Key": "gone.html"}})
    r = web(server, bucket, "/missing")
    assert r.status == 404 and b"NoSuchKey" in r.body


def test_range_and_conditional_gets(server, s3, site):
    data = os.urandom(100_000)
    s3.put_object(Bucket=site, Key="blob.bin", Body=data)
    r = web(server, site, "/blob.bin", "-H", "Range: bytes=1000-1999")
    assert r.status == 206 and r.body == data[1000:2000]
    assert r.header("content-range") == f"bytes 1000-1999/{len(data)}"
    r = web(server, site, "/blob.bin", "-H", "Range: bytes=-10")
    assert r.status == 206 and r.body == data[-10:]
    r = web(server, site, "/blob.bin", "-H", "Range: bytes=200000-")
    assert r.status == 416
    full = web(server, site, "/blob.bin")
    etag = full.header("etag")
    assert full.status == 200 and full.body == data and etag
    r = web(server, site, "/blob.bin", "-H", f"If-None-Match: {etag}")
    assert r.status == 304 and r.body == b""
    r = web(server, site, "/blob.bin", "-H", 'If-None-Match: "other"')
    assert r.status == 200 and r.body == data
    r = web(server, site, "/blob.bin", "-H", f"If-Modified-Since: {full.header('last-modified')}")
    assert r.status == 304
    r = web(server, site, "/blob.bin", "-H", 'If-Match: "other"')
    assert r.status == 412


def test_large_objects_stream_whole(server, s3, site):
    data = os.urandom(5 * MiB + 123)
    s3.put_object(Bucket=site, Key="big/video.bin", Body=data)
    r = web(server, site, "/big/video.bin")
    assert r.status == 200
    assert hashlib.sha256(r.body).hexdigest() == hashlib.sha256(data).hexdigest()
    r = web(server, site, "/big/video.bin", "-H", f"Range: bytes={3 * MiB}-{3 * MiB + 99}")
    assert r.status == 206 and r.body == data[3 * MiB:3 * MiB + 100]


def test_only_get_and_head_are_served(server, site):
    for method in ["PUT", "DELETE", "POST"]:
        r = web(server, site, "/index.html", "-X", method)
        assert r.status == 405, method
        assert "GET" in r.header("allow")


def test_buckets_that_are_not_websites_are_not_served(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="index.html", Body=INDEX)
    r = web(server, bucket, "/index.html")
    assert r.status == 404 and b"NoSuchWebsiteConfiguration" in r.body
    # A missing bucket answers the same: visitors cannot tell which names exist.
    r = web(server, "no-such-bucket-anywhere", "/")
    assert r.status == 404 and b"NoSuchWebsiteConfiguration" in r.body


def test_host_without_root_domain_names_the_bucket(server, site):
    # The whole host name is the bucket when it is not under --web-root-domain.
    r = web(server, site, "/")  # sanity: served under the root domain
    assert r.status == 200
    from web_helpers import curl
    r = curl("-H", f"Host: {site}", f"http://127.0.0.1:{server.web_port}/")
    assert (r.status, r.body) == (200, INDEX)


def test_website_configuration_over_the_s3_api(server, s3, site):
    got = s3.get_bucket_website(Bucket=site)
    assert got["IndexDocument"] == {"Suffix": "index.html"}
    assert got["ErrorDocument"] == {"Key": "errors/404.html"}
    s3.delete_bucket_website(Bucket=site)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_website(Bucket=site)
    assert error_code(e) == "NoSuchWebsiteConfiguration"
    assert web(server, site, "/").status == 404
    # Refused configurations, with S3's codes.
    for config, code in [
        ({"IndexDocument": {"Suffix": "a/b.html"}}, "InvalidArgument"),
        ({"ErrorDocument": {"Key": "e.html"}}, "InvalidArgument"),
        ({"IndexDocument": {"Suffix": "i.html"},
          "RoutingRules": [{"Redirect": {"HostName": "x"}}]}, "NotImplemented"),
    ]:
        with pytest.raises(ClientError) as e:
            s3.put_bucket_website(Bucket=site, WebsiteConfiguration=config)
        assert error_code(e) == code, config


def test_redirect_all_requests(server, s3, bucket):
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration={
        "RedirectAllRequestsTo": {"HostName": "example.org", "Protocol": "https"}})
    r = web(server, bucket, "/a/b?c=d")
    assert r.status == 301 and r.header("location") == "https://example.org/a/b?c=d"


def test_website_cli_allows_and_denies(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="home.htm", Body=b"cli home", ContentType="text/html")
    s3.put_object(Bucket=bucket, Key="oops.htm", Body=b"cli oops", ContentType="text/html")
    assert web(server, bucket, "/").status == 404
    info = admin(server, "bucket", "website", bucket, "--allow",
                 "--index-document", "home.htm", "--error-document", "oops.htm")
    assert info["website"] == {"index_document": "home.htm", "error_document": "oops.htm"}
    assert web(server, bucket, "/").body == b"cli home"
    r = web(server, bucket, "/missing")
    assert (r.status, r.body) == (404, b"cli oops")
    # The S3 API sees the same configuration.
    assert s3.get_bucket_website(Bucket=bucket)["IndexDocument"] == {"Suffix": "home.htm"}
    assert "website" in admin(server, "bucket", "info", bucket)
    info = admin(server, "bucket", "website", bucket, "--deny")
    assert "website" not in info
    assert web(server, bucket, "/").status == 404


def test_aws_cli_s3_website_enables_a_site(server, aws, s3, bucket):
    s3.put_object(Bucket=bucket, Key="index.html", Body=INDEX, ContentType="text/html")
    s3.put_object(Bucket=bucket, Key="err.html", Body=ERROR_PAGE, ContentType="text/html")
    aws("s3", "website", f"s3://{bucket}", "--index-document", "index.html",
        "--error-document", "err.html")
    assert web(server, bucket, "/").body == INDEX
    assert (web(server, bucket, "/x").status, web(server, bucket, "/x").body) == (404, ERROR_PAGE)
