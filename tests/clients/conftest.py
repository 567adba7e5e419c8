"""Harness for the client integration tests.

One `granary` server is started per test session (free ports on 127.0.0.1, a temporary
data directory, random root credentials) and shared by every test; `server.restart()`
stops it and starts it again on the same data directory and ports.

Real clients are driven against it: boto3 (default settings, flexible checksums on),
the AWS CLI v1 from the test virtual environment, s3cmd and rclone from Debian.
"""

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from helpers import KiB, MiB, REGION, free_port, write_random_file

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 30
STOP_TIMEOUT_S = 15

def clean_env():
    """The process environment without anything that could point a client elsewhere."""
    env = dict(os.environ)
    for k in list(env):
        if k.startswith(("AWS_", "RCLONE_", "S3CMD_")) and k != "AWS_CA_BUNDLE":
            del env[k]
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


# Keep boto3 in this process from reading ~/.aws or a profile of the machine.
os.environ.update(
    {
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
)
for _k in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
    os.environ.pop(_k, None)


# --------------------------------------------------------------------------- server


# Virtual-host-style requests name their bucket as `<bucket>.s3.granary.test` in Host.
ROOT_DOMAIN = "s3.granary.test"
# The website listener serves `<bucket>.web.granary.test`.
WEB_ROOT_DOMAIN = "web.granary.test"


class GranaryServer:
    """A `granary server` child process with its data dir, ports and root key."""

    def __init__(self, binary, workdir):
        self.binary = str(binary)
        self.workdir = Path(workdir)
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "granary.log"
        self.s3_port = free_port()
        self.admin_port = free_port()
        self.web_port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.s3_port}"
        self.access_key = "GK" + secrets.token_hex(9).upper()
        self.secret_key = secrets.token_urlsafe(30)[:40]
        self.proc = None
        self.starts = 0
        # Added to the command line and the environment by tests that need more.
        self.shards = 2
        self.extra_args = []
        self.extra_env = {}
        # CA bundle for a server that speaks TLS (None: plain HTTP).
        self.ca_bundle = None

    # -- lifecycle

    def command(self):
        return [
            self.binary,
            "server",
            "--data-dir",
            str(self.data_dir),
            "--s3-addr",
            f"127.0.0.1:{self.s3_port}",
            "--admin-addr",
            f"127.0.0.1:{self.admin_port}",
            "--shards",
            str(self.shards),
            "--s3-root-domain",
            ROOT_DOMAIN,
            "--web-addr",
            f"127.0.0.1:{self.web_port}",
            "--web-root-domain",
            WEB_ROOT_DOMAIN,
            *self.extra_args,
        ]

    def start(self):
        self.launch()
        self.wait_ready()

    def launch(self):
        """Starts the process without waiting for it to serve."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        env = clean_env()
        env["GRANARY_ROOT_ACCESS_KEY_ID"] = self.access_key
        env["GRANARY_ROOT_SECRET_ACCESS_KEY"] = self.secret_key
        env.setdefault("RUST_BACKTRACE", "1")
        env.update(self.extra_env)
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"\n===== start #{self.starts}: {' '.join(self.command())}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.workdir,
        )
        log.close()

    def wait_ready(self):
        client = self.client(retries=0, connect_timeout=2, read_timeout=5)
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.fail(f"granary exited with status {self.proc.returncode} while starting")
            try:
                client.list_buckets()
                return
            except (ClientError, BotoCoreError) as e:
                last = e
            time.sleep(0.1)
        self.stop()
        self.fail(f"granary not ready within {READY_TIMEOUT_S}s (last error: {last!r})")

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT_S)

    def restart(self):
        self.stop()
        self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines=80):
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def fail(self, why):
        pytest.fail(f"{why}\n--- granary log ({self.log_path}) ---\n{self.log_tail()}", pytrace=False)

    # -- clients

    def client(self, secret_key=None, access_key=None, retries=None, **config):
        """A boto3 S3 client with default settings apart from path-style addressing."""
        kwargs = {"s3": {"addressing_style": "path"}}
        if retries is not None:
            kwargs["retries"] = {"total_max_attempts": retries + 1, "mode": "standard"}
        kwargs.update(config)
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            verify=self.ca_bundle,
            config=Config(**kwargs),
        )


def granary_binary_path():
    binary = Path(os.environ.get("GRANARY_BIN", REPO / "target" / "debug" / "granary"))
    if not binary.exists():
        pytest.exit(
            f"granary binary not found at {binary}: run `cargo build` "
            "or set GRANARY_BIN",
            returncode=2,
        )
    return binary


_SERVERS = []


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = GranaryServer(granary_binary_path(), tmp_path_factory.mktemp("granary"))
    _SERVERS.append(srv)
    srv.start()
    yield srv
    srv.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test's report carries the end of the server log."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _SERVERS:
        srv = _SERVERS[-1]
        rep.sections.append((f"granary log tail ({srv.log_path})", srv.log_tail(40)))


@pytest.fixture(autouse=True)
def _server_survives(request):
    """Every test ends with the server still running: nothing a client sends kills it."""
    yield
    if "server" in request.fixturenames:
        srv = request.getfixturevalue("server")
        if not srv.alive():
            code = srv.proc.returncode if srv.proc else None
            srv.fail(f"granary died during {request.node.name} (status {code})")


# --------------------------------------------------------------------------- clients


@pytest.fixture
def s3(server):
    """boto3 S3 client, default settings (flexible checksums on), root key."""
    return server.client()


def _bucket_name(request):
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    base = base.removeprefix("test-")[:40].strip("-")
    return f"{base}-{uuid.uuid4().hex[:8]}"


def empty_bucket(client, bucket):
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        objs = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if objs:
            client.delete_objects(Bucket=bucket, Delete={"Objects": objs, "Quiet": True})
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    for u in uploads:
        client.abort_multipart_upload(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])


@pytest.fixture
def bucket(request, server):
    """A fresh bucket for this test; emptied and deleted afterwards (best effort)."""
    client = server.client()
    name = _bucket_name(request)
    client.create_bucket(Bucket=name)
    yield name
    if server.alive():
        try:
            empty_bucket(client, name)
            client.delete_bucket(Bucket=name)
        except (ClientError, BotoCoreError):
            pass


@pytest.fixture(scope="session")
def client_env(server):
    """Environment for the AWS CLI: credentials and region of the test server."""
    env = clean_env()
    env.update(
        {
            "AWS_ACCESS_KEY_ID": server.access_key,
            "AWS_SECRET_ACCESS_KEY": server.secret_key,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_PAGER": "",
            "AWS_DEFAULT_OUTPUT": "json",
        }
    )
    return env


def _run(argv, env, check=True, timeout=600, input=None):
    proc = subprocess.run(
        argv,
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"command failed ({proc.returncode}): {' '.join(map(str, argv))}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}",
            pytrace=False,
        )
    return proc


@pytest.fixture(scope="session")
def aws(server, client_env):
    """aws(*args, check=True) -> CompletedProcess; the venv's AWS CLI v1 on the server."""
    exe = Path(sys.executable).parent / "aws"
    if not exe.exists():
        exe = shutil.which("aws")
    assert exe, "AWS CLI not found: run tools/install-test-deps.sh"

    def run(*args, check=True, timeout=600):
        argv = [str(exe), "--endpoint-url", server.endpoint, *map(str, args)]
        return _run(argv, client_env, check=check, timeout=timeout)

    return run


@pytest.fixture(scope="session")
def s3cmd(server, tmp_path_factory):
    """s3cmd(*args, check=True) -> CompletedProcess, with a config file for the server."""
    exe = shutil.which("s3cmd")
    assert exe, "s3cmd not found: run tools/install-test-deps.sh"
    cfg = tmp_path_factory.mktemp("s3cmd") / "s3cfg"
    hostport = f"127.0.0.1:{server.s3_port}"
    cfg.write_text(
        "[default]\n"
        f"access_key = {server.access_key}\n"
        f"secret_key = {server.secret_key}\n"
        f"host_base = {hostport}\n"
        f"host_bucket = {hostport}\n"
        f"bucket_location = {REGION}\n"
        "use_https = False\n"
        "signature_v2 = False\n"
        "check_ssl_certificate = False\n"
        "guess_mime_type = True\n"
    )
    env = clean_env()

    def run(*args, check=True, timeout=600):
        argv = [exe, "-c", str(cfg), "--no-progress", *map(str, args)]
        return _run(argv, env, check=check, timeout=timeout)

    return run


@pytest.fixture(scope="session")
def rclone(server, tmp_path_factory):
    """rclone(*args, check=True) -> CompletedProcess, with remote `g:` on the server."""
    exe = shutil.which("rclone")
    assert exe, "rclone not found: run tools/install-test-deps.sh"
    env = clean_env()
    # rclone 1.60 refuses to start when AWS_CA_BUNDLE is set.
    env.pop("AWS_CA_BUNDLE", None)
    env.update(
        {
            "RCLONE_CONFIG": str(tmp_path_factory.mktemp("rclone") / "rclone.conf"),
            "RCLONE_CONFIG_G_TYPE": "s3",
            "RCLONE_CONFIG_G_PROVIDER": "Other",
            "RCLONE_CONFIG_G_ENV_AUTH": "false",
            "RCLONE_CONFIG_G_ACCESS_KEY_ID": server.access_key,
            "RCLONE_CONFIG_G_SECRET_ACCESS_KEY": server.secret_key,
            "RCLONE_CONFIG_G_ENDPOINT": server.endpoint,
            "RCLONE_CONFIG_G_REGION": REGION,
            "RCLONE_CONFIG_G_FORCE_PATH_STYLE": "true",
        }
    )
    Path(env["RCLONE_CONFIG"]).touch()

    def run(*args, check=True, timeout=600):
        argv = [exe, *map(str, args)]
        return _run(argv, env, check=check, timeout=timeout)

    return run


@pytest.fixture(scope="session")
def scratch(tmp_path_factory):
    """A session-wide directory for generated files that several tests may reuse."""
    return tmp_path_factory.mktemp("scratch")




# Object sizes every client must round-trip byte for byte: empty, one byte, around the
# small-object / block boundaries, around 1 MiB, and one big multipart-sized object.
SIZES = [0, 1, 3 * KiB - 1, 3 * KiB, 3 * KiB + 1, MiB - 1, MiB, MiB + 1, 64 * MiB]


@pytest.fixture(scope="session")
def size_tree(scratch):
    """A directory tree (three levels) holding one random file of each of SIZES."""
    root = scratch / "size-tree"
    if not root.exists():
        for i, size in enumerate(SIZES):
            sub = ["", "a/", "a/b/"][i % 3]
            write_random_file(root / f"{sub}obj-{size}B.bin", size)
    return root
