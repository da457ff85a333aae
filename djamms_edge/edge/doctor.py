"""``djamms-edge doctor``: can this box play, and if not, what exactly to fix.

The same checks run when the daemon starts (their problems go to the log, systemd's STATUS line, the
status page and the hub's heartbeat). Each check asks the one module that owns the outside thing
(yt-dlp: ``media.fetcher``; ffmpeg: ``media.ffmpeg``; libmpv: ``player.mpv_player``; the hub:
``sync.hub_client``); turning what they found into findings is pure (``judge_*``), so the sentences are
tested table-driven. Every problem is one plain sentence that ends with its fix. A *blocking* problem means
the box cannot play (no audio output, no ffmpeg, a refused token...): ``doctor`` exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from djamms_edge.edge.config import EdgeConfig
from djamms_edge.shared.cli import add_config_option, load_or_exit

if TYPE_CHECKING:
    from djamms_edge.edge.media.fetcher import YtDlpEnvironment
    from djamms_edge.edge.player.mpv_player import OutputProbe
    from djamms_edge.edge.sync.hub_api import WhoAmI

log = logging.getLogger(__name__)

YTDLP_MAX_AGE_DAYS = 60  # YouTube changes every few weeks; an older yt-dlp usually fails on it
MIN_FREE_BYTES = 500_000_000  # room for a few music videos
CLOCK_SKEW_LIMIT_S = 60.0  # beyond this, token times and TLS start to disagree with the hub
EARLIEST_SANE = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)  # a Pi without a clock battery boots in 1970
TOKEN_EXPIRY_WARNING_S = 14 * 86400
MAX_PROBLEMS, MAX_PROBLEM_CHARS = 20, 300  # what the hub's heartbeat takes


@dataclass(frozen=True, slots=True)
class Finding:
    check: str  # what was checked, e.g. "JavaScript runtime"
    ok: bool
    detail: str  # what was found
    problem: str = ""  # when not ok: one plain sentence, ending with the fix
    blocks_play: bool = False  # the box cannot play until it is fixed


@dataclass(frozen=True, slots=True)
class Report:
    findings: tuple[Finding, ...]

    @property
    def problems(self) -> list[str]:
        return [f.problem for f in self.findings if not f.ok]

    @property
    def can_play(self) -> bool:
        return not any(f.blocks_play for f in self.findings if not f.ok)

    def status_line(self) -> str:
        """One line for systemd's STATUS= (``systemctl status``)."""
        problems = self.problems
        if not problems:
            return "doctor: no problems"
        more = f" (+{len(problems) - 1} more: djamms-edge doctor)" if len(problems) > 1 else ""
        return f"{'cannot play' if not self.can_play else 'doctor'}: {problems[0]}{more}"

    def text(self) -> str:
        lines = []
        for finding in self.findings:
            mark = "ok  " if finding.ok else ("FAIL" if finding.blocks_play else "warn")
            lines.append(f"{mark}  {finding.check}: {finding.detail}")
            if not finding.ok:
                lines.append(f"      -> {finding.problem}")
        count = len(self.problems)
        verdict = "no problems" if not count else f"{count} problem{'s' if count > 1 else ''}"
        lines.append(f"\n{verdict}; {'the box can play' if self.can_play else 'the box CANNOT play'}")
        return "\n".join(lines)


# --- pure judgements --------------------------------------------------------------------------------


def judge_js_runtime(env: YtDlpEnvironment) -> Finding:
    runtime, check = env.runtime, "JavaScript runtime"
    fix = ("reinstall the djamms-edge package (it ships deno), or set [edge.fetch] js_runtime/js_runtime_path "
           "to deno >= 2.3, node >= 22 or bun >= 1.2.11")
    if runtime.version is None:
        where = f" at {runtime.path}" if runtime.path else ""
        return Finding(check, False, f"{runtime.name}: none found{where}",
                       f"yt-dlp has no JavaScript runtime ({runtime.name}{where} does not run), so YouTube "
                       f"downloads fail: {fix}.", blocks_play=True)
    found = f"{runtime.name} {runtime.version} at {runtime.path} (yt-dlp {env.version} needs >= {runtime.minimum})"
    if not runtime.supported:
        return Finding(check, False, found,
                       f"yt-dlp {env.version} does not accept {runtime.name} {runtime.version} (it needs "
                       f"{runtime.minimum} or newer), so YouTube downloads fail: {fix}.", blocks_play=True)
    return Finding(check, True, found)


def judge_ejs(env: YtDlpEnvironment) -> Finding:
    check = "yt-dlp-ejs"
    if env.ejs_version is None:
        return Finding(check, False, "not installed",
                       "yt-dlp-ejs (the scripts that solve YouTube's player challenges) is missing: reinstall the "
                       "djamms-edge package.", blocks_play=True)
    wanted = env.ejs_wanted
    if wanted is not None and env.ejs_version.split(".")[:2] != wanted.split(".")[:2]:
        return Finding(check, False, f"{env.ejs_version}, yt-dlp {env.version} wants {wanted}",
                       f"yt-dlp {env.version} needs yt-dlp-ejs {wanted} but {env.ejs_version} is installed, so "
                       f"YouTube's challenges may fail: install the djamms-edge release that ships yt-dlp "
                       f"{env.version}, or `djamms-edge update-ytdlp` again after it does.")
    return Finding(check, True, env.ejs_version + (f" (yt-dlp wants {wanted})" if wanted else ""))


def judge_ytdlp_age(version: str, location: str, today: dt.date) -> Finding:
    check = "yt-dlp"
    try:
        year, month, day = (int(part) for part in version.split(".")[:3])
        released = dt.date(year, month, day)
    except ValueError:
        return Finding(check, True, f"{version} from {location} (release date unknown)")
    age = (today - released).days
    detail = f"{version} from {location} ({age} days old)"
    if age > YTDLP_MAX_AGE_DAYS:
        return Finding(check, False, detail,
                       f"yt-dlp {version} is {age} days old and YouTube changes often: run `djamms-edge "
                       f"update-ytdlp` (the nightly djamms-edge-ytdlp-update.timer does it when it is enabled and "
                       f"the box reaches PyPI).")
    return Finding(check, True, detail)


def judge_ffmpeg(version: str | None) -> Finding:
    if version is None:
        return Finding("ffmpeg", False, "not found",
                       "ffmpeg does not run, so no track can be analysed or played: `apt install ffmpeg`.",
                       blocks_play=True)
    return Finding("ffmpeg", True, version)


def judge_outputs(probe: OutputProbe, config_ao: str, video: bool) -> list[Finding]:
    if probe.libmpv_version is None:
        return [Finding("libmpv", False, "cannot start",
                        f"libmpv does not start ({probe.audio_error}), so nothing plays: `apt install libmpv2`.",
                        blocks_play=True)]
    findings = [Finding("libmpv", True, probe.libmpv_version)]
    asked = config_ao or "mpv's choice"
    if probe.audio_output is None:
        findings.append(Finding(
            "audio output", False, f"{asked}: {probe.audio_error}",
            f"the audio output ({asked}) does not open ({probe.audio_error}), so the venue hears nothing: "
            "connect the speakers or HDMI and check [edge.player] ao and audio_device (`aplay -l` lists devices).",
            blocks_play=True))
    else:
        findings.append(Finding("audio output", True, f"{probe.audio_output} opens"))
    if video:
        if probe.screen_error is not None:
            findings.append(Finding(
                "screen", False, f"cannot open ({probe.screen_error})",
                "video is on but no screen could be opened, so only sound plays: connect the TV and switch it on, "
                "or set [edge.player] video = false for an audio-only box."))
        else:
            findings.append(Finding("screen", True, "the video output opens"))
    return findings


def judge_disk(cache_dir: Path, free: int | None, writable: bool, cap: int) -> Finding:
    check = "cache space"
    if free is None or not writable:
        return Finding(check, False, f"{cache_dir} is not writable",
                       f"the media cache {cache_dir} cannot be written, so nothing new can be fetched: check "
                       "[edge] cache_dir and that the djamms-edge user owns it.", blocks_play=True)
    detail = f"{free / 1e9:.1f} GB free in {cache_dir} (cache cap {cap / 1e9:.1f} GB)"
    if free < MIN_FREE_BYTES:
        return Finding(check, False, detail,
                       f"only {free / 1e6:.0f} MB are free for the media cache, so new tracks cannot be fetched: "
                       "free disk space or lower [edge.cache] max_bytes.")
    return Finding(check, True, detail)


def judge_clock(now: float, server_time: float | None) -> Finding:
    check = "clock"
    local = dt.datetime.fromtimestamp(now, dt.UTC)
    if local < EARLIEST_SANE:
        return Finding(check, False, f"says {local:%Y-%m-%d %H:%M} UTC",
                       f"the clock says {local:%Y-%m-%d}, so tokens and HTTPS fail: enable time sync "
                       "(`timedatectl set-ntp true`) and check the network.", blocks_play=True)
    if server_time is None:
        return Finding(check, True, f"{local:%Y-%m-%d %H:%M:%S} UTC (not compared: no hub answer)")
    skew = now - server_time
    detail = f"{local:%Y-%m-%d %H:%M:%S} UTC, {skew:+.0f}s from the hub"
    if abs(skew) > CLOCK_SKEW_LIMIT_S:
        return Finding(check, False, detail,
                       f"this box's clock is {abs(skew):.0f}s {'ahead of' if skew > 0 else 'behind'} the hub's, so "
                       "its tokens may be refused: enable time sync (`timedatectl set-ntp true`).")
    return Finding(check, True, detail)


@dataclass(frozen=True, slots=True)
class HubAnswer:
    """How the hub answered ``whoami``: exactly one of ``who``, ``refused``, ``unreachable`` is set."""

    who: WhoAmI | None = None
    refused: str | None = None  # the hub said no (4xx), in its words
    unreachable: str | None = None


def judge_hub(edge: EdgeConfig, answer: HubAnswer | None, now: float) -> list[Finding]:
    """Hub reachable, token valid and for this box's id and venue. ``answer`` None: no hub configured."""
    if not edge.hub.url:
        return [Finding("hub", True, "none configured: the box plays its local playlist")]
    token_fix = (f"pair the box (start the daemon with no [edge.hub] device_token and enter the code it shows on the "
                 f"console's dashboard), or issue a token with `djamms-hub device-token --venue {edge.venue_id} "
                 f"--device {edge.device_id}` and put it in [edge.hub] device_token")
    findings: list[Finding] = []
    claims = _claims(edge.hub.device_token)
    if claims is None:
        return [Finding("device token", False, "missing or not a JWT",
                        f"this box has no usable device token, so the hub will not let it play: {token_fix}.",
                        blocks_play=True)]
    token_device, token_venue = claims.get("deviceId"), claims.get("venueId")
    if token_device != edge.device_id:
        findings.append(Finding(
            "device id", False, f"token is for {token_device!r}, this box is {edge.device_id!r}",
            f"the device token is for box {token_device!r} but this box is {edge.device_id!r}, so the hub refuses "
            f"it: {token_fix} (or set [edge] device_id = {json.dumps(str(token_device))}).", blocks_play=True))
    elif token_venue != edge.venue_id:
        findings.append(Finding(
            "device id", False, f"token is for venue {token_venue!r}, this box plays for {edge.venue_id!r}",
            f"the device token is for venue {token_venue!r} but this box plays for {edge.venue_id!r}: {token_fix}.",
            blocks_play=True))
    else:
        findings.append(Finding("device id", True, f"{edge.device_id} (the token's)"))
    expires = claims.get("exp")
    if isinstance(expires, (int, float)) and expires - now < TOKEN_EXPIRY_WARNING_S:
        when = dt.datetime.fromtimestamp(expires, dt.UTC)
        expired = expires <= now
        findings.append(Finding(
            "token expiry", False, f"{'expired' if expired else 'expires'} {when:%Y-%m-%d}",
            f"the device token {'expired' if expired else 'expires'} on {when:%Y-%m-%d}: {token_fix}.",
            blocks_play=expired))
    if answer is None or answer.unreachable is not None:
        why = answer.unreachable if answer is not None else "not asked"
        findings.append(Finding(
            "hub", False, f"{edge.hub.url} unreachable ({why})",
            f"the hub at {edge.hub.url} does not answer, so the box plays its saved queue and paid requests wait: "
            "check the network and [edge.hub] url."))
    elif answer.refused is not None:
        findings.append(Finding(
            "hub", False, f"{edge.hub.url} refused the token ({answer.refused})",
            f"the hub refuses this box's device token ({answer.refused}): {token_fix}.", blocks_play=True))
    else:
        who = answer.who
        assert who is not None
        findings.append(Finding("hub", True, f"{edge.hub.url} accepts the token ({who.role} {who.subject})"))
    return findings


def _claims(token: str) -> dict[str, object] | None:
    """The token's claims, read without checking its signature (the hub does that): what it *says*."""
    if not token:
        return None
    import jwt  # here: only a box with a hub has a token (PyJWT is ~0.3 MiB of the daemon's RSS)

    try:
        return dict(jwt.decode(token, options={"verify_signature": False}))
    except jwt.PyJWTError:
        return None


# --- gathering (through the modules that own each outside thing) ---------------------------------------


async def examine(edge: EdgeConfig) -> Report:
    """Every check (``djamms-edge doctor``)."""
    box, hub = await asyncio.gather(examine_box(edge), examine_hub(edge))
    return Report(box + hub)


async def examine_box(edge: EdgeConfig, *, fetching: bool = True) -> tuple[Finding, ...]:
    """The checks of this box itself. ``fetching=False`` (a box playing only local files) leaves out yt-dlp's,
    which start a media worker. The audio and screen probe opens the outputs, so the daemon runs this before
    its player holds them."""
    from djamms_edge.edge.media.ffmpeg import ffmpeg_version
    from djamms_edge.edge.player.mpv_player import probe_outputs

    findings: list[Finding] = []
    if fetching:
        from djamms_edge.edge.media.fetcher import probe_ytdlp
        from djamms_edge.edge.media.worker import WorkerFailed

        try:
            env = await probe_ytdlp(edge.fetch)  # asked in a media worker: the daemon never imports yt-dlp
        except WorkerFailed as exc:
            findings.append(Finding("yt-dlp", False, "does not run",
                                    f"{exc}: nothing can be downloaded; run `djamms-edge update-ytdlp` or reinstall "
                                    "the djamms-edge package."))
        else:
            findings += [judge_js_runtime(env), judge_ejs(env),
                         judge_ytdlp_age(env.version, env.location, dt.datetime.now(dt.UTC).date())]
    findings.append(judge_ffmpeg(await ffmpeg_version()))
    probe = await asyncio.to_thread(probe_outputs, edge.player)
    findings += judge_outputs(probe, edge.player.ao, edge.player.video)
    free, writable = await asyncio.to_thread(_cache_space, edge.cache_dir)
    findings.append(judge_disk(edge.cache_dir, free, writable, cap=edge.cache.max_bytes))
    return tuple(findings)


async def examine_hub(edge: EdgeConfig) -> tuple[Finding, ...]:
    """The hub, this box's token and the clock (compared with the hub's)."""
    now = time.time()
    answer = await ask_hub(edge)
    findings = judge_hub(edge, answer, now)
    findings.append(judge_clock(now, answer.who.server_time if answer and answer.who else None))
    return tuple(findings)


class BoxDoctor:
    """The daemon's doctor: the box's checks once at start, the hub's at start and every ``hub_every_s``
    (a hub that was down comes back; a token gets revoked). ``problems()`` is what the status page, systemd's
    STATUS line and the hub heartbeat show."""

    def __init__(self, edge: EdgeConfig, on_change: Callable[[Report], None], hub_every_s: float = 600.0) -> None:
        self._edge = edge
        self._on_change = on_change
        self._hub_every_s = hub_every_s
        self._box: tuple[Finding, ...] = ()
        self._hub: tuple[Finding, ...] = ()
        self.report = Report(())

    def problems(self) -> list[str]:
        return [problem[:MAX_PROBLEM_CHARS] for problem in self.report.problems[:MAX_PROBLEMS]]

    async def examine_box(self, *, fetching: bool) -> None:
        self._box = await examine_box(self._edge, fetching=fetching)
        self._update()

    async def follow_hub(self) -> None:
        """Runs until cancelled; never raises (a doctor must not take the player down)."""
        while True:
            try:
                self._hub = await examine_hub(self._edge)
            except Exception:
                log.exception("doctor: checking the hub failed")
            self._update()
            await asyncio.sleep(self._hub_every_s)

    def _update(self) -> None:
        previous, self.report = self.report, Report(self._box + self._hub)
        if self.report.problems != previous.problems:
            for finding in self.report.findings:
                if not finding.ok and finding.problem not in previous.problems:
                    log.log(logging.ERROR if finding.blocks_play else logging.WARNING, "doctor: %s", finding.problem)
            self._on_change(self.report)


async def ask_hub(edge: EdgeConfig) -> HubAnswer | None:
    if not edge.hub.url:
        return None
    from djamms_edge.edge.sync.errors import HubRefused, HubUnavailable
    from djamms_edge.edge.sync.hub_client import HubClient

    client = HubClient(edge.hub.url, edge.hub.device_token, edge.venue_id, edge.device_id,
                       timeout_s=edge.sync.request_timeout_s)
    try:
        return HubAnswer(who=await client.whoami())
    except HubRefused as exc:
        return HubAnswer(refused=str(exc))
    except HubUnavailable as exc:
        return HubAnswer(unreachable=str(exc))
    finally:
        await client.close()


def _cache_space(cache_dir: Path) -> tuple[int | None, bool]:
    """(free bytes, writable) of the cache directory, or of its nearest existing parent before the first run."""
    existing = cache_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        free = shutil.disk_usage(existing).free
    except OSError:
        return None, False
    return free, os.access(existing, os.W_OK | os.X_OK)


# --- the command ---------------------------------------------------------------------------------------


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = sub.add_parser("doctor", help="check that this box can play; each problem with its fix (exit 1: cannot)")
    add_config_option(command)
    command.add_argument("--json", action="store_true", help="print the findings as JSON")


def run_command(args: argparse.Namespace) -> int:
    from djamms_edge.edge.daemon import with_device_id
    from djamms_edge.edge.pairing import load_credentials, needs_pairing, with_credentials

    config = with_device_id(load_or_exit(args.config))
    stored = load_credentials(config.edge) if needs_pairing(config.edge) else None
    if stored is not None:  # a paired box: the token and venue it stored, as the daemon uses them
        config = with_credentials(config, stored)
    edge = config.edge
    report = asyncio.run(examine(edge))
    if args.json:
        print(json.dumps({"canPlay": report.can_play, "problems": report.problems,
                          "findings": [asdict(f) for f in report.findings]}, indent=2))
    else:
        print(f"djamms-edge doctor: box {edge.device_id}, venue {edge.venue_id}\n")
        print(report.text())
    return 0 if report.can_play else 1

