"""docs/hub-deploy.md's nginx, as documented, as a real process in front of a hub (tests and bench/hub_load.py).

The nginx block is read from the document itself, so what the engineer on call copies is what runs; only the
listen line (no TLS certificate here), the hub's port and the log's path are changed.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.ports import reserved_port

DEPLOY_DOC = Path(__file__).resolve().parents[2] / "docs" / "hub-deploy.md"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"  # /usr/sbin is not on every user's PATH
TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def documented_nginx_block() -> str:
    """The nginx configuration shown under "Behind a reverse proxy"."""
    section = DEPLOY_DOC.read_text().split("## Behind a reverse proxy", 1)[1]
    match = re.search(r"```nginx\n(.*?)```", section, re.S)
    assert match, "docs/hub-deploy.md shows no nginx block under 'Behind a reverse proxy'"
    return match.group(1)


def nginx_config(workdir: Path, port: int, hub_port: int, *, connections: int = 1024,
                 without: tuple[str, ...] = ()) -> str:
    """A whole nginx.conf: the documented block inside ``http``, nginx's files under ``workdir``; lines of the
    block that start with one of ``without`` are left out."""
    block = documented_nginx_block()
    served = block.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{port};")
    assert served != block, "the documented block no longer listens with 'listen 443 ssl http2;'"
    served = served.replace("127.0.0.1:8700", f"127.0.0.1:{hub_port}")
    served = served.replace("/var/log/nginx/access.log", str(workdir / "access.log"))
    served = "\n".join(line for line in served.splitlines() if not line.strip().startswith(without or ("\0",)))
    temp = "\n".join(f"    {kind}_temp_path {workdir / kind};" for kind in TEMP_KINDS)
    return (f"daemon off;\nmaster_process off;\nworker_rlimit_nofile {connections * 2};\n"
            f"pid {workdir / 'nginx.pid'};\nerror_log {workdir / 'error.log'} warn;\n"
            f"events {{ worker_connections {connections}; }}\n"
            f"http {{\n    access_log {workdir / 'access.log'};\n{temp}\n{served}\n}}\n")


def start_nginx(workdir: Path, hub_port: int, *, connections: int = 1024,
                without: tuple[str, ...] = ()) -> tuple[subprocess.Popen[bytes], int]:
    """nginx in front of the hub on ``hub_port``, on a port reserved for it (tests/ports.py: nginx binds beside
    the reservation, nothing else can take the port meanwhile), once it answers. The caller terminates it."""
    assert Path(NGINX).exists(), "nginx missing: scripts/install-system-deps.sh --with-postgres installs nginx-light"
    for kind in TEMP_KINDS:
        (workdir / kind).mkdir(exist_ok=True)
    with reserved_port() as port:  # until nginx listens on it
        (workdir / "nginx.conf").write_text(nginx_config(workdir, port, hub_port, connections=connections,
                                                                without=without))
        proc = subprocess.Popen([NGINX, "-p", str(workdir), "-c", str(workdir / "nginx.conf")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port
            time.sleep(0.05)
    proc.kill()
    proc.wait()
    error = (workdir / "error.log").read_text() if (workdir / "error.log").exists() else ""
    raise AssertionError(f"nginx did not start:\n{error}")
