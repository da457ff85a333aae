"""A throwaway hub on loopback, run by this interpreter's djamms_edge: does it serve on uvloop, with orjson?

Not a test (nothing here is in CI): scripts/arm64-check.sh runs it in the arm64 chroot with the installed
package's venv, and it works the same on a real box or a dev machine:

    /opt/djamms/venv/bin/python scripts/hub-smoke.py      # run it from outside the source tree

It seeds a venue and a box into a scratch SQLite store (`djamms-hub seed-demo`), starts `djamms-hub serve` on
127.0.0.1 (a free port), and checks, printing each answer: that uvloop's and orjson's extension modules are
mapped into the serving process (the hub falls back to asyncio's loop without a word when uvloop does not
import, so only this tells), GET /healthz, register, 20 heartbeats (their median time), four bodies that
orjson refuses or reads unlike `json` (hub/fastjson.py hands them to `json`: the same 400s everywhere), and a
clean exit on SIGTERM. Exit status 1 if any of that is not so.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

SECRET = "hub-smoke-secret-0123456789abcdef-01234"  # noqa: S105 (a throwaway hub)
VENUE, DEVICE = "smoke-venue", "smoke-box"
BEATS = 20


def call(url: str, body: bytes | None = None, token: str | None = None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    request = urllib.request.Request(  # noqa: S310 (a loopback URL we built)
        url, data=body, headers=headers, method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:  # noqa: S310
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def main() -> int:
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hub-smoke-") as tmp:
        config = Path(tmp) / "hub.toml"
        config.write_text(f'[hub]\njwt_secret = "{SECRET}"\n[hub.store]\nurl = "sqlite:///{tmp}/hub.db"\n')
        hub_cli = [sys.executable, "-m", "djamms_edge.hub.cli"]
        started = time.monotonic()
        seeded = subprocess.run([*hub_cli, "seed-demo", "--config", str(config), "--venue", VENUE, "--device", DEVICE],
                                capture_output=True, text=True, check=True, timeout=600, cwd=tmp)
        token = json.loads(seeded.stdout)["deviceToken"]
        print(f"seed-demo took {time.monotonic() - started:.1f}s")
        started = time.monotonic()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DJAMMS_")}
        hub = subprocess.Popen([*hub_cli, "serve", "--config", str(config), "--host", "127.0.0.1", "--port", "0"],
                               stderr=subprocess.PIPE, text=True, env=env, cwd=tmp)
        assert hub.stderr is not None
        try:
            for line in hub.stderr:
                if "hub listening:" in line:
                    base = line.split("hub listening: ", 1)[1].strip()
                    break
            else:
                print(f"the hub exited ({hub.wait()}) before listening")
                return 1
            print(f"hub listening at {base} after {time.monotonic() - started:.1f}s")
            maps = Path(f"/proc/{hub.pid}/maps").read_text()
            for name, pattern in (("uvloop", r"\S*/uvloop/loop\.\S*\.so"), ("orjson", r"\S*/orjson/orjson\.\S*\.so")):
                found = sorted(set(re.findall(pattern, maps)))
                print(f"{name} in the serving process: {', '.join(found) or 'NO'}")
                if not found:
                    problems.append(f"{name} is not loaded in the serving hub")

            status, body = call(f"{base}/healthz")
            print("GET /healthz:", status, body)
            if status != 200:
                problems.append(f"/healthz answered {status}")
            players = f"{base}/api/v1/venues/{VENUE}/players"
            status, body = call(f"{players}/register", json.dumps({"deviceId": DEVICE}).encode(), token)
            print("register:", status, body)
            if status != 200 or json.loads(body).get("status") != "registered":
                problems.append(f"register answered {status} {body}")
            times, answers = [], set()
            for _ in range(BEATS):
                before = time.perf_counter()
                status, body = call(f"{players}/heartbeat", json.dumps({"deviceId": DEVICE}).encode(), token)
                times.append(time.perf_counter() - before)
                answers.add((status, json.loads(body).get("status")))
            print(f"{BEATS} heartbeats: answers {sorted(answers)}, median {statistics.median(times) * 1000:.1f} ms")
            if answers != {(200, "updated")}:
                problems.append(f"heartbeats answered {sorted(answers)}")
            for label, raw in (("a 19-digit number", b'{"deviceId": 1234567890123456789}'),
                               ("a lone surrogate", b'{"deviceId": "\\ud800"}'), ("NaN", b'{"deviceId": NaN}'),
                               ("no JSON", b"{deviceId")):
                status, body = call(f"{players}/heartbeat", raw, token)
                print(f"heartbeat with {label}: {status} {body}")
                if status != 400:
                    problems.append(f"a heartbeat with {label} answered {status}, not 400")
        finally:
            hub.send_signal(signal.SIGTERM)
            code = hub.wait(timeout=120)
            print("hub exit status after SIGTERM:", code)
            if code != 0:
                problems.append(f"the hub exited with {code} on SIGTERM")
    for problem in problems:
        print("PROBLEM:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
