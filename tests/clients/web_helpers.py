"""Helpers for the website, CORS and POST-upload tests: curl as the HTTP client, the
website listener addressed by name (`<bucket>.web.granary.test`, resolved to 127.0.0.1
with curl's --resolve), and the `granary` admin CLI."""

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from conftest import WEB_ROOT_DOMAIN


@dataclass
class CurlResult:
    status: int
    headers: dict  # lowercase name -> value (the final response's)
    body: bytes

    def header(self, name):
        return self.headers.get(name.lower())


def curl(*args, timeout=60):
    """Runs curl with `args`; returns the final response's status, headers and body."""
    exe = shutil.which("curl")
    assert exe, "curl not found: run tools/install-test-deps.sh"
    with tempfile.TemporaryDirectory() as tmp:
        head_path, body_path = Path(tmp) / "head", Path(tmp) / "body"
        proc = subprocess.run(
            [exe, "-sS", "--max-time", str(timeout), "-D", str(head_path), "-o", str(body_path),
             "-w", "%{http_code}", *map(str, args)],
            capture_output=True, text=True, timeout=timeout + 10,
        )
        assert proc.returncode == 0, f"curl {' '.join(map(str, args))}: {proc.stderr}"
        text = head_path.read_bytes().decode("latin-1")
        blocks = [b for b in text.split("\r\n\r\n") if b.strip()]
        headers = {}
        for line in blocks[-1].split("\r\n")[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = body_path.read_bytes() if body_path.exists() else b""
        return CurlResult(int(proc.stdout.strip()), headers, body)


def site_host(bucket):
    return f"{bucket}.{WEB_ROOT_DOMAIN}"


def web(server, bucket, path="/", *args):
    """curl on the website listener, for `bucket` addressed by name."""
    host = site_host(bucket)
    return curl("--resolve", f"{host}:{server.web_port}:127.0.0.1",
                f"http://{host}:{server.web_port}{path}", *args)


def admin(server, group, *args):
    """`granary <group> ... --json` against the test server's admin API."""
    argv = [server.binary, group, "--admin-addr", f"127.0.0.1:{server.admin_port}",
            "--data-dir", str(server.data_dir), "--json", *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{' '.join(argv)}\n{proc.stdout}\n{proc.stderr}"
    out = proc.stdout.strip()
    return json.loads(out) if out.startswith(("{", "[")) else out
