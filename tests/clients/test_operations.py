"""The operator's side: configuration, the admin API (tokens, health, status, tasks),
Prometheus metrics checked by promtool, systemd notifications and unit, TLS with the AWS CLI
and boto3 (and its reload on SIGHUP), and the shutdown timeout."""

import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import warnings

import pytest

from conftest import REPO, GranaryServer, clean_env, granary_binary_path
from helpers import MiB, wait_for

UNIT = REPO / "tools" / "systemd" / "granary.service"


def run_granary(*args, env=None, timeout=30):
    return subprocess.run(
        [str(granary_binary_path()), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or clean_env(),
    )


def admin_request(server, path, token=None, method="GET", context=None):
    """(status, body) of one admin API request."""
    scheme = "https" if context else "http"
    request = urllib.request.Request(
        f"{scheme}://127.0.0.1:{server.admin_port}{path}", method=method
    )
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def admin_token(server):
    return (server.data_dir / "admin.token").read_text().strip()


def cli(server, *args, extra=()):
    target = ["--admin-addr", f"127.0.0.1:{server.admin_port}", "--data-dir", str(server.data_dir)]
    result = run_granary(args[0], *target, *extra, *args[1:])
    assert result.returncode == 0, result.stderr
    return result.stdout


# --------------------------------------------------------------------------- configuration


def test_print_config_shows_effective_values_masks_secrets_and_reads_back(tmp_path):
    config = tmp_path / "granary.toml"
    config.write_text('shards = 3\ndata_fsync = "periodic:200"\ns3_region = "garage"\n')
    secret = "s3cr3t-admin-token-0123456789"
    printed = run_granary(
        "server",
        "--config",
        str(config),
        "--shards",
        "1",
        "--admin-token",
        secret,
        "--print-config",
    )
    assert printed.returncode == 0, printed.stderr
    text = printed.stdout
    assert secret not in text
    assert 'admin_token = "********"' in text
    assert "shards = 1" in text  # the flag wins over the file
    assert 'data_fsync = "periodic:200"' in text  # the file wins over the default
    assert 'metadata_fsync = "always"' in text  # the default
    assert "shutdown_timeout_s = 30" in text
    # What it prints is a configuration file the server accepts as it is.
    again = tmp_path / "printed.toml"
    again.write_text(text.replace('admin_token = "********"\n', ""))
    reread = run_granary("server", "--config", str(again), "--print-config")
    assert reread.returncode == 0, reread.stderr
    assert reread.stdout == text.replace('admin_token = "********"\n', "")


@pytest.mark.parametrize(
    "toml_text, flags, key, allowed",
    [
        ("shard = 2\n", [], "shard", "unknown field"),
        ('data_fsync = "sometimes"\n', [], "data_fsync", "periodic:<ms>"),
        ("block_size = 1000\n", [], "block_size", "multiple of 4096"),
        ("", ["--tls-cert", "/nonexistent/cert.pem"], "tls_key", "needed"),
        ('admin_token = "short"\n', [], "admin_token", "16"),
        ('log_format = "xml"\n', [], "log_format", "human or json"),
        ("shutdown_timeout_s = 999999\n", [], "shutdown_timeout_s", "86400"),
    ],
)
def test_bad_configuration_is_refused_naming_the_key(tmp_path, toml_text, flags, key, allowed):
    config = tmp_path / "granary.toml"
    config.write_text(toml_text)
    result = run_granary("server", "--config", str(config), "--data-dir", str(tmp_path), *flags)
    assert result.returncode != 0
    assert key in result.stderr and allowed in result.stderr, result.stderr
    assert "panicked" not in result.stderr


def test_unreadable_tls_files_stop_the_server_at_start(tmp_path):
    result = run_granary(
        "server",
        "--data-dir",
        str(tmp_path),
        "--tls-cert",
        str(tmp_path / "missing.pem"),
        "--tls-key",
        str(tmp_path / "missing.key"),
        "--s3-addr",
        "127.0.0.1:0",
    )
    assert result.returncode != 0
    assert "missing.pem" in result.stderr, result.stderr


# --------------------------------------------------------------------------- admin API


def test_admin_api_refuses_a_missing_or_wrong_token(server):
    assert admin_request(server, "/v1/status")[0] == 401
    assert admin_request(server, "/v1/status", token="not-the-token-at-all")[0] == 401
    assert admin_request(server, "/v1/keys", token="")[0] == 401
    assert admin_request(server, "/v1/scrub", token="wrong", method="POST")[0] == 401
    status, body = admin_request(server, "/v1/status", token=admin_token(server))
    assert status == 200, body
    status_json = json.loads(body)
    assert status_json["shards"] == 2
    assert status_json["data_fsync"] == "always"


def test_health_needs_no_token_and_reports_every_shard(server):
    status, body = admin_request(server, "/health")
    assert status == 200, body
    assert json.loads(body) == {"status": "ok", "shards": 2}


def test_metrics_pass_promtool_after_traffic(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="small", Body=b"x" * 100)
    s3.put_object(Bucket=bucket, Key="large", Body=os.urandom(3 * MiB))
    assert len(s3.get_object(Bucket=bucket, Key="large")["Body"].read()) == 3 * MiB
    s3.list_objects_v2(Bucket=bucket)
    with pytest.raises(Exception):
        s3.get_object(Bucket=bucket, Key="missing")
    status, text = admin_request(server, "/metrics")
    assert status == 200
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)

    def total(prefix, **labels):
        want = [f'{k}="{v}"' for k, v in labels.items()]
        return sum(
            v for k, v in samples.items() if k.startswith(prefix + "{") and all(w in k for w in want)
        )

    assert total("granary_requests_total", op="PutObject", status="200") >= 2
    assert total("granary_requests_total", op="GetObject", status="404") >= 1
    assert total("granary_requests_total", op="ListObjectsV2", status="200") >= 1
    assert total("granary_request_duration_seconds_count", op="GetObject") >= 2
    assert total("granary_received_bytes_total") >= 3 * MiB
    assert total("granary_sent_bytes_total") >= 3 * MiB
    assert total("granary_data_syncs_total") >= 1
    assert total("granary_meta_commits_total") >= 1
    assert total("granary_data_written_bytes_total") >= 3 * MiB
    # Index entries (and so the live-byte count) commit shortly after the acknowledgement.
    wait_for(lambda: metric_total(server, "granary_segment_live_bytes") >= 3 * MiB,
             "3 MiB of live bytes in the metrics", timeout=10)
    assert total("granary_lmdb_bytes") > 0
    assert total("granary_connections_open") >= 1


def metric_total(server, name):
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in admin_request(server, "/metrics")[1].splitlines()
        if line.startswith(name + "{")
    )


def test_copy_object_references_the_source_blocks_without_reading_them(server, s3, bucket):
    """CopyObject takes one more reference on each block of its source: no block is read,
    however large the object, and the copy outlives its source."""
    body = os.urandom(3 * MiB + 5)
    s3.put_object(Bucket=bucket, Key="src", Body=body)
    read_before = metric_total(server, "granary_block_read_bytes_total")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert metric_total(server, "granary_block_read_bytes_total") == read_before
    s3.delete_object(Bucket=bucket, Key="src")
    got = s3.get_object(Bucket=bucket, Key="dst")["Body"].read()
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(body).hexdigest()
    # The counter does count reads: the GET read every byte.
    assert metric_total(server, "granary_block_read_bytes_total") >= read_before + len(body)


def test_concurrent_uploads_hashed_together_keep_their_own_etags(server, bucket):
    """Uploads that run at once share their shard's MD5 lanes (api::md5_lanes): each
    still gets the MD5 of its own bytes as its ETag, whatever the block boundaries."""
    import concurrent.futures

    hashed_before = metric_total(server, "granary_md5_bytes_total")
    bodies = {f"o{i}": os.urandom(MiB + 4099 * i * 97) for i in range(12)}

    def put(key):
        client = server.client()
        return key, client.put_object(Bucket=bucket, Key=key, Body=bodies[key])["ETag"]

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        etags = dict(pool.map(put, bodies))
    s3 = server.client()
    for key, body in bodies.items():
        assert etags[key] == f'"{hashlib.md5(body).hexdigest()}"', key
        got = s3.get_object(Bucket=bucket, Key=key)
        assert got["ETag"] == etags[key]
        assert got["Body"].read() == body
    hashed = metric_total(server, "granary_md5_bytes_total") - hashed_before
    assert hashed >= sum(len(b) for b in bodies.values())
    assert metric_total(server, "granary_md5_blocks_total") >= metric_total(
        server, "granary_md5_rounds_total"
    ) > 0


def test_scrub_and_gc_run_on_request_with_progress_in_status_and_metrics(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="blocks", Body=os.urandom(4 * MiB + 5))
    # The scrub walks the committed index: wait for the blocks' index entries to commit.
    def live_bytes():
        stats = json.loads(cli(server, "stats", extra=["--json"]))
        return sum(s["storage"]["live_bytes"] for s in stats)

    wait_for(lambda: live_bytes() >= 4 * MiB, "the block index's commit", timeout=10)
    out = cli(server, "scrub")
    assert "started scrub" in out
    deadline = time.monotonic() + 60
    while True:
        status = json.loads(cli(server, "status", extra=["--json"]))
        scrubs = [t for s in status["tasks"] for t in s["tasks"] if t["task"] == "scrub"]
        if len(scrubs) == 2 and all(t["state"] == "done" for t in scrubs):
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert sum(t["done"] for t in scrubs) >= 5  # the object's 5 blocks, at least
    assert all(t["finished_ms"] >= t["started_ms"] for t in scrubs)
    text = admin_request(server, "/metrics")[1]
    assert 'granary_task_progress_ratio{shard="0",task="scrub"} 1' in text
    assert "scrub done" in cli(server, "status")
    assert "started gc" in cli(server, "gc")
    stats = json.loads(cli(server, "stats", extra=["--json"]))
    assert len(stats) == 2
    assert sum(s["storage"]["scrubbed_blocks"] for s in stats) >= 5
    assert "lmdb bytes" in cli(server, "stats")


# --------------------------------------------------------------------------- systemd


def test_sd_notify_ready_watchdog_and_stopping_arrive_on_the_notify_socket(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(30)
    server = GranaryServer(granary_binary_path(), tmp_path / "node")
    server.extra_env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"}
    try:
        server.start()  # returns once S3 answers
        messages = []

        def receive_until(predicate):
            while not any(predicate(m) for m in messages):
                messages.append(sock.recv(4096).decode())

        receive_until(lambda m: "READY=1" in m)
        ready = next(m for m in messages if "READY=1" in m)
        assert "STATUS=serving S3" in ready
        receive_until(lambda m: m == "WATCHDOG=1")
        server.proc.send_signal(signal.SIGTERM)
        receive_until(lambda m: "STOPPING=1" in m)
        assert server.proc.wait(30) == 0
        # READY comes before any STOPPING, and only once.
        assert sum("READY=1" in m for m in messages) == 1
        first_stop = next(i for i, m in enumerate(messages) if "STOPPING=1" in m)
        assert messages.index(ready) < first_stop
    finally:
        server.stop()
        sock.close()


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze missing: tools/install-test-deps.sh installs systemd")
    # verify checks that ExecStart names an executable: point it at the built binary.
    binary = granary_binary_path().resolve()
    unit = tmp_path / "granary.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/granary", str(binary)))
    text = unit.read_text()
    for required in [
        "Type=notify",
        "LimitMEMLOCK=infinity",
        "LimitNOFILE=",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/granary",
        "NoNewPrivileges=yes",
        "DynamicUser=yes",
        "WatchdogSec=",
    ]:
        assert required in text, required
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if "granary.service" in line and str(unit) in line or "Unknown" in line
    ]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr


# --------------------------------------------------------------------------- TLS


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(directory):
    """A private certificate authority, as an operator would run for internal services."""
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-days", "2", "-subj", "/CN=Granary test CA", "-keyout", str(ca_key), "-out", str(ca),
    )
    return ca, ca_key


def make_certificate(directory, name, ca, ca_key):
    """A server certificate for 127.0.0.1 and localhost, signed by the CA."""
    cert, key, csr = (directory / f"{name}{ext}" for ext in (".pem", ".key", ".csr"))
    ext = directory / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")
    openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(csr),
    )
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert),
    )
    return cert, key


class TlsServer(GranaryServer):
    def __init__(self, binary, workdir, cert, key, ca_bundle):
        super().__init__(binary, workdir)
        self.endpoint = f"https://127.0.0.1:{self.s3_port}"
        self.ca_bundle = str(ca_bundle)
        self.extra_args = ["--tls-cert", str(cert), "--tls-key", str(key)]


def peer_certificate(port, ca):
    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest(), tls.version()


def test_tls_round_trip_with_the_aws_cli_and_boto3_and_reload_on_sighup(tmp_path):
    ca, ca_key = make_ca(tmp_path)
    cert, key = make_certificate(tmp_path, "first", ca, ca_key)
    server = TlsServer(granary_binary_path(), tmp_path / "node", cert, key, ca)
    # The files the server reads, replaced in place for the reload.
    live_cert, live_key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(cert, live_cert)
    shutil.copy(key, live_key)
    server.extra_args = ["--tls-cert", str(live_cert), "--tls-key", str(live_key)]
    server.start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="tls")
        body = os.urandom(9 * MiB)
        s3.put_object(Bucket="tls", Key="boto3", Body=body)
        assert s3.get_object(Bucket="tls", Key="boto3")["Body"].read() == body

        env = clean_env()
        env.update(
            AWS_ACCESS_KEY_ID=server.access_key,
            AWS_SECRET_ACCESS_KEY=server.secret_key,
            AWS_DEFAULT_REGION="us-east-1",
        )
        aws = [str(REPO / ".venv" / "bin" / "aws"), "--endpoint-url", server.endpoint]
        src = tmp_path / "up.bin"
        src.write_bytes(os.urandom(12 * MiB))
        for argv in (
            ["s3", "cp", str(src), "s3://tls/cli", "--ca-bundle", str(ca)],
            ["s3", "cp", "s3://tls/cli", str(tmp_path / "down.bin"), "--ca-bundle", str(ca)],
        ):
            result = subprocess.run(aws + argv, env=env, capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stderr
        assert (tmp_path / "down.bin").read_bytes() == src.read_bytes()
        # Without trusting the certificate the CLI refuses to talk.
        refused = subprocess.run(
            aws + ["s3", "ls", "s3://tls"], env=env, capture_output=True, text=True, timeout=60
        )
        assert refused.returncode != 0
        assert "certificate" in refused.stderr.lower() or "ssl" in refused.stderr.lower()

        # Only TLS 1.2 and 1.3.
        fingerprint, version = peer_certificate(server.s3_port, ca)
        assert version in ("TLSv1.2", "TLSv1.3")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            old.check_hostname = False
            old.verify_mode = ssl.CERT_NONE
            old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.0/1.1
            old.minimum_version = ssl.TLSVersion.TLSv1
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises(ssl.SSLError) as refused_old:
            with socket.create_connection(("127.0.0.1", server.s3_port), timeout=10) as raw:
                with old.wrap_socket(raw):
                    pass
        assert "ALERT" in str(refused_old.value)  # the server said no, not our client

        # The admin API speaks TLS too; the CLI trusts the certificate it is given.
        status = cli(server, "status", extra=["--admin-ca", str(ca), "--json"])
        assert json.loads(status)["tls"] is True
        context = ssl.create_default_context(cafile=str(ca))
        assert admin_request(server, "/health", context=context)[0] == 200

        # The website listener too: a bucket that is no website answers 404 over TLS.
        with pytest.raises(urllib.error.HTTPError) as not_a_site:
            urllib.request.urlopen(
                f"https://127.0.0.1:{server.web_port}/", timeout=10, context=context
            )
        assert not_a_site.value.code == 404
        assert peer_certificate(server.web_port, ca)[0] == fingerprint

        # SIGHUP: new connections get the new certificate, an open one keeps working.
        kept = server.client()
        kept.head_object(Bucket="tls", Key="boto3")
        second, second_key = make_certificate(tmp_path, "second", ca, ca_key)
        shutil.copy(second, live_cert)
        shutil.copy(second_key, live_key)
        server.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: peer_certificate(server.s3_port, ca)[0] != fingerprint,
                 "the certificate's reload", timeout=10)
        assert kept.get_object(Bucket="tls", Key="boto3")["Body"].read() == body
        assert server.alive()

        # A bad file on SIGHUP keeps the current certificate.
        live_key.write_text("not a key")
        server.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "keeping the previous TLS certificate" in server.log_tail(),
                 "the bad reload's report", timeout=10)
        assert server.alive()
        new_fingerprint = peer_certificate(server.s3_port, ca)[0]
        assert new_fingerprint != fingerprint
    finally:
        server.stop()


# --------------------------------------------------------------------------- shutdown


def test_shutdown_timeout_bounds_a_stop_that_waits_for_a_stalled_upload(tmp_path):
    server = GranaryServer(granary_binary_path(), tmp_path)
    server.extra_args = ["--shutdown-timeout-s", "2"]
    server.start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="stall")
        url = s3.generate_presigned_url(
            "put_object", Params={"Bucket": "stall", "Key": "k"}, ExpiresIn=300
        )
        path = url.split(str(server.s3_port), 1)[1]
        stalled = socket.create_connection(("127.0.0.1", server.s3_port))
        stalled.sendall(
            f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.s3_port}\r\n"
            "Content-Length: 1048576\r\n\r\n".encode()
            + b"x" * 1000
        )
        time.sleep(0.3)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(20) == 0, server.log_tail()
        took = time.monotonic() - started
        assert took < 15, f"stop took {took:.1f}s with a 2 s timeout"
        stalled.close()
        # Nothing half-written is visible after a restart, and the store opens cleanly.
        server.start()
        with pytest.raises(Exception):
            server.client().head_object(Bucket="stall", Key="k")
    finally:
        server.stop()


# --------------------------------------------------------------------------- OpenAPI


def test_every_path_of_the_openapi_document_is_served_as_documented(server):
    import yaml

    doc = yaml.safe_load((REPO / "docs" / "admin-api.yaml").read_text())
    token = admin_token(server)
    schemas = doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        concrete = path.replace("{id}", "GKNOSUCHKEY").replace("{name}", "no-such-bucket")
        for method, operation in item.items():
            if method == "parameters":
                continue
            open_path = operation.get("security") == []
            if not open_path:
                status, _ = admin_request(server, concrete, method=method.upper())
                assert status == 401, f"{method} {path} without a token gave {status}"
            status, body = admin_request(server, concrete, token=token, method=method.upper())
            documented = {int(code) for code in operation["responses"]}
            assert status in documented, f"{method} {path}: {status} not in {documented}: {body}"
            assert "no such admin endpoint" not in body, f"{method} {path} is not served"
            schema = operation["responses"][str(status)].get("content", {})
            schema = schema.get("application/json", {}).get("schema", {})
            if "$ref" in schema:
                schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
            for field in schema.get("required", []):
                assert field in json.loads(body), f"{method} {path}: {field} missing in {body}"
    assert admin_request(server, "/v1/nothing-here", token=token)[0] == 404


# --------------------------------------------------------------------------- logs


def test_json_logs_carry_the_request_id_that_responses_carry(tmp_path):
    server = GranaryServer(granary_binary_path(), tmp_path)
    server.extra_args = ["--log-format", "json"]
    server.extra_env = {"GRANARY_LOG": "info,granary::access=debug"}
    server.start()
    try:
        s3 = server.client()
        with pytest.raises(Exception) as missing:
            s3.head_bucket(Bucket="no-such-bucket-here")
        request_id = missing.value.response["ResponseMetadata"]["RequestId"]
        assert request_id
        deadline = time.monotonic() + 10
        while True:
            lines = [
                json.loads(line)
                for line in server.log_path.read_text().splitlines()
                if line.startswith("{")
            ]
            access = [entry for entry in lines if entry.get("target") == "granary::access"]
            match = [e for e in access if e["fields"].get("request_id") == request_id]
            if match:
                break
            assert time.monotonic() < deadline, access[-3:]
            time.sleep(0.1)
        fields = match[0]["fields"]
        assert fields["op"] == "HeadBucket"
        assert fields["status"] == 404
        assert any(e["fields"].get("message", "").startswith("Granary is ready") for e in lines)
    finally:
        server.stop()


def test_connections_are_spread_evenly_over_the_shards(tmp_path):
    """The kernel spreads connections over the shards' listeners by a hash of their
    addresses, unevenly; a shard serving more than another hands a new connection to the
    least busy one. Connections opened one after another end up split evenly."""
    server = GranaryServer(granary_binary_path(), tmp_path)  # two shards
    server.start()
    try:
        connections = []
        for _ in range(12):
            c = socket.create_connection(("127.0.0.1", server.s3_port), timeout=10)
            # Served (so counted) before the next one connects.
            c.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert c.recv(65536).startswith(b"HTTP/1.1 403")
            connections.append(c)
        text = admin_request(server, "/metrics")[1]
        open_by_shard = {
            line.split('shard="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("granary_connections_open{")
        }
        assert open_by_shard == {"0": 6.0, "1": 6.0}, open_by_shard
        # Every connection still works after being handed over.
        for c in connections:
            c.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert c.recv(65536).startswith(b"HTTP/1.1 403")
            c.close()
    finally:
        server.stop()
