"""CORS: rules set with boto3 (Put/Get/DeleteBucketCors), preflights sent with curl as a
browser sends them (OPTIONS, Origin, Access-Control-Request-Method/-Headers, no
signature), on the S3 listener and on the website listener; `Access-Control-*` headers on
actual responses only when a rule allows the origin and method."""

import pytest
from botocore.exceptions import ClientError

from helpers import error_code, error_code_from_xml, unique
from web_helpers import curl, web

APP = "http://app.granary.test"
EVIL = "http://evil.granary.test"

RULES = [
    {
        "ID": "app",
        "AllowedOrigins": [APP, "http://*.apps.granary.test"],
        "AllowedMethods": ["GET", "PUT", "POST"],
        "AllowedHeaders": ["Content-Type", "x-amz-*"],
        "ExposeHeaders": ["ETag", "x-amz-request-id"],
        "MaxAgeSeconds": 600,
    },
    {"AllowedOrigins": ["*"], "AllowedMethods": ["HEAD"]},
]


@pytest.fixture
def cors_bucket(s3, bucket):
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    s3.put_object(Bucket=bucket, Key="doc.txt", Body=b"shared text")
    return bucket


def preflight(server, bucket, origin, method, headers=None, key="doc.txt"):
    args = ["-X", "OPTIONS", f"{server.endpoint}/{bucket}/{key}"]
    if origin:
        args += ["-H", f"Origin: {origin}"]
    if method:
        args += ["-H", f"Access-Control-Request-Method: {method}"]
    if headers:
        args += ["-H", f"Access-Control-Request-Headers: {headers}"]
    return curl(*args)


def test_cors_configuration_round_trips(s3, cors_bucket):
    rules = s3.get_bucket_cors(Bucket=cors_bucket)["CORSRules"]
    assert rules[0]["AllowedOrigins"] == RULES[0]["AllowedOrigins"]
    assert rules[0]["AllowedMethods"] == ["GET", "PUT", "POST"]
    assert rules[0]["ExposeHeaders"] == ["ETag", "x-amz-request-id"]
    assert rules[0]["MaxAgeSeconds"] == 600 and rules[0]["ID"] == "app"
    assert rules[1]["AllowedOrigins"] == ["*"]
    s3.delete_bucket_cors(Bucket=cors_bucket)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_cors(Bucket=cors_bucket)
    assert error_code(e) == "NoSuchCORSConfiguration"


def test_bad_cors_configurations_are_refused(s3, bucket):
    for rules, code in [
        ([{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}], "InvalidRequest"),
        ([{"AllowedOrigins": ["http://*.*.example"], "AllowedMethods": ["GET"]}],
         "InvalidRequest"),
        ([{"AllowedOrigins": [], "AllowedMethods": ["GET"]}], "MalformedXML"),
    ]:
        with pytest.raises(ClientError) as e:
            s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
        assert error_code(e) == code, rules


def test_allowed_preflight(server, cors_bucket):
    r = preflight(server, cors_bucket, APP, "PUT", "content-type, X-Amz-Date")
    assert r.status == 200, r.body
    assert r.header("access-control-allow-origin") == APP
    assert r.header("access-control-allow-methods") == "GET, PUT, POST"
    assert r.header("access-control-allow-headers") == "content-type, x-amz-date"
    assert r.header("access-control-expose-headers") == "ETag, x-amz-request-id"
    assert r.header("access-control-max-age") == "600"
    # A wildcard origin pattern, and the second rule's `*` for HEAD.
    r = preflight(server, cors_bucket, "http://one.apps.granary.test", "GET")
    assert r.status == 200 and r.header("access-control-allow-origin") == \
        "http://one.apps.granary.test"
    r = preflight(server, cors_bucket, EVIL, "HEAD")
    assert r.status == 200 and r.header("access-control-allow-origin") == "*"


@pytest.mark.parametrize("origin,method,headers", [
    (EVIL, "GET", None),                        # origin not allowed
    (APP, "DELETE", None),                      # method not allowed
    (APP, "PUT", "x-custom-header"),            # header not allowed
    ("https://app.granary.test", "GET", None),  # scheme is part of the origin
])
def test_refused_preflight(server, cors_bucket, origin, method, headers):
    r = preflight(server, cors_bucket, origin, method, headers)
    assert r.status == 403
    assert error_code_from_xml(r.body) == "AccessForbidden"
    assert r.header("access-control-allow-origin") is None


def test_preflight_without_rules_or_information(server, s3, cors_bucket):
    plain = unique("no-cors")
    s3.create_bucket(Bucket=plain)
    try:
        r = preflight(server, plain, APP, "GET")
        assert r.status == 403 and error_code_from_xml(r.body) == "AccessForbidden"
    finally:
        s3.delete_bucket(Bucket=plain)
    # A missing bucket answers as one without rules: preflights do not tell names apart.
    r = preflight(server, "no-such-bucket-anywhere", APP, "GET")
    assert r.status == 403 and error_code_from_xml(r.body) == "AccessForbidden"
    r = preflight(server, cors_bucket, None, "GET")
    assert r.status == 400
    r = preflight(server, cors_bucket, APP, None)
    assert r.status == 400


def test_actual_responses_carry_the_headers_only_when_allowed(server, s3, cors_bucket):
    url = s3.generate_presigned_url("get_object", Params={"Bucket": cors_bucket,
                                                          "Key": "doc.txt"})
    r = curl("-H", f"Origin: {APP}", url)
    assert (r.status, r.body) == (200, b"shared text")
    assert r.header("access-control-allow-origin") == APP
    assert r.header("access-control-expose-headers") == "ETag, x-amz-request-id"
    assert r.header("vary") == "Origin"
    r = curl("-H", f"Origin: {EVIL}", url)
    assert r.status == 200 and r.header("access-control-allow-origin") is None
    r = curl(url)
    assert r.header("access-control-allow-origin") is None
    # Errors carry them too (a browser script can read why it failed).
    missing = s3.generate_presigned_url("get_object", Params={"Bucket": cors_bucket,
                                                              "Key": "missing"})
    r = curl("-H", f"Origin: {APP}", missing)
    assert r.status == 404 and r.header("access-control-allow-origin") == APP


def test_website_listener_answers_preflights_and_adds_headers(server, s3, cors_bucket):
    s3.put_object(Bucket=cors_bucket, Key="index.html", Body=b"hi", ContentType="text/html")
    s3.put_bucket_website(Bucket=cors_bucket,
                          WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}})
    r = web(server, cors_bucket, "/", "-X", "OPTIONS", "-H", f"Origin: {APP}",
            "-H", "Access-Control-Request-Method: GET")
    assert r.status == 200 and r.header("access-control-allow-origin") == APP
    r = web(server, cors_bucket, "/", "-X", "OPTIONS", "-H", f"Origin: {EVIL}",
            "-H", "Access-Control-Request-Method: GET")
    assert r.status == 403 and r.header("access-control-allow-origin") is None
    r = web(server, cors_bucket, "/", "-H", f"Origin: {APP}")
    assert (r.status, r.body) == (200, b"hi")
    assert r.header("access-control-allow-origin") == APP
    r = web(server, cors_bucket, "/", "-H", f"Origin: {EVIL}")
    assert r.status == 200 and r.header("access-control-allow-origin") is None
