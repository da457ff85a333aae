#!/usr/bin/env bash
# Check that the Pi (arm64, Debian 12) is still a first-class target, on any amd64 Debian 12 machine:
# builds an arm64 bookworm chroot run under qemu-user (binfmt), builds our .deb *inside* it
# (packaging/build-deb.sh, so every wheel is an aarch64 one, systemd-python compiled there), installs
# it with apt (dependencies resolved from Debian's arm64 archive), then runs `djamms-edge doctor`, the
# cue analysis through PyAV (in-process FFmpeg: decoding and libavfilter) on generated AAC, MP3 and H.264+AAC files with known
# cue points and on real recordings (compared with this machine's .venv when there is one), the hub on
# uvloop with orjson (scripts/hub-smoke.py), and an audio-only demo (hub + edge daemon + libmpv, ao=null).
#
# Not part of CI: under emulation on 2 cores it takes a long while (the chroot ~10 min, the wheels and
# the install ~15 min, the analysis and the hub a few minutes, the demo a minute or two). Needs root,
# network to Debian's archive and PyPI. A failed check is reported at the end; the later ones still run.
#
#   scripts/arm64-check.sh              # everything; the chroot is kept and reused by later runs
#   scripts/arm64-check.sh --prepare    # only build the chroot and install its Debian packages
#
# Environment: ARM64_ROOT (default /var/tmp/djamms-arm64-bookworm), DEBIAN_MIRROR, DEMO_SECONDS (default 45),
# ARM64_TRACKS (real recordings to analyse; default Frozen-Bubble's two themes when frozen-bubble-data is installed).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
root=${ARM64_ROOT:-/var/tmp/djamms-arm64-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
demo_seconds=${DEMO_SECONDS:-45}
prepare_only=false
[ "${1:-}" = "--prepare" ] && prepare_only=true

step() { printf '\n=== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

[ "$(id -u)" -eq 0 ] || { echo "arm64-check: run as root (debootstrap, chroot, mounts)" >&2; exit 2; }

# --- the host: debootstrap, qemu-user and binfmt -------------------------------------------------
missing=()
for pkg in debootstrap qemu-user-static binfmt-support; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    step "installing ${missing[*]} on the host"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
[ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64

# --- the chroot ------------------------------------------------------------------------------------
if [ ! -e "$root/.djamms-debootstrap-done" ]; then
    step "debootstrap arm64 bookworm into $root"
    rm -rf "$root"
    debootstrap --arch=arm64 --variant=minbase bookworm "$root" "$mirror"
    touch "$root/.djamms-debootstrap-done"
fi

mounted=()
cleanup() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
bind() { mkdir -p "$root$2"; mount "${@:3}" "$1" "$root$2"; mounted+=("$root$2"); }
bind proc /proc -t proc
bind sysfs /sys -t sysfs
bind /dev /dev --bind
bind devpts /dev/pts -t devpts
cp /etc/resolv.conf "$root/etc/resolv.conf"
# No services start inside the chroot (there is no init); the package's postinst knows that.
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"

in_root() { chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

step "the chroot's architecture"
in_root uname -m
in_root dpkg --print-architecture

if [ ! -e "$root/.djamms-build-deps-done" ]; then
    step "Debian packages for building the .deb (in the chroot)"
    in_root apt-get update -qq
    # build-deb.sh: python3-venv for its build venv, gcc/python3-dev/libsystemd-dev/pkg-config for
    # systemd-python (no aarch64 wheel), ca-certificates for PyPI.
    in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        python3 python3-venv python3-dev gcc pkg-config libsystemd-dev ca-certificates
    touch "$root/.djamms-build-deps-done"
fi
# Certificate authorities added on the host (a company or sandbox proxy's) are trusted in the chroot too,
# so pip reaches PyPI from there the way it does from here.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    in_root update-ca-certificates >/dev/null
fi
$prepare_only && { step "chroot ready"; exit 0; }

# --- build the .deb in the chroot, from this work tree's tracked files ------------------------------
step "copying the source (tracked files of $(git rev-parse --short HEAD)) into the chroot"
rm -rf "$root/src/djamms-edge"
mkdir -p "$root/src/djamms-edge"
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$root/src/djamms-edge"

step "building the arm64 .deb in the chroot (aarch64 wheels from PyPI)"
# The wheelhouse lives outside the copied source, so a second run reuses it.
start=$(date +%s)
deb=$(in_root env WHEELHOUSE=/var/cache/djamms-wheelhouse bash -c 'cd /src/djamms-edge && packaging/build-deb.sh' \
      | tail -n 1)
echo "built $deb in $(( $(date +%s) - start ))s"
ls -l "$root$deb"
in_root dpkg-deb -I "$deb" | sed -n '/Package:/,/Depends:/p'
echo "wheels shipped:"
in_root dpkg-deb -c "$deb" | grep -o '[^/]*\.whl' | sort

step "installing it with apt (its Debian dependencies from the arm64 archive)"
start=$(date +%s)
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$deb" >/dev/null
echo "installed in $(( $(date +%s) - start ))s"
in_root /opt/djamms/venv/bin/python -c 'import platform, sys; print(platform.machine(), sys.version.split()[0])'
in_root /opt/djamms/venv/bin/pip list --disable-pip-version-check 2>/dev/null | grep -Ei '^(deno|yt-dlp|python-mpv|systemd)'

# --- what the box would say, analyse and play ---------------------------------------------------------
mkdir -p "$root/tmp/arm64-check"
cat > "$root/tmp/arm64-check/config.toml" <<'TOML'
[edge]
venue_id = "arm64-check"
device_id = "arm64-check-box"
state_dir = "/tmp/arm64-check/state"
cache_dir = "/tmp/arm64-check/cache"

[edge.fetch]
mode = "audio"

[edge.player]
video = false
ao = "null"
TOML

step "djamms-edge doctor (no hub configured, no sound card in a chroot)"
set +e
in_root /usr/bin/djamms-edge doctor --config /tmp/arm64-check/config.toml
echo "doctor exit status: $?"
set -e

problems=()

step "the native wheels are aarch64 builds; PyAV's own FFmpeg"
in_root /opt/djamms/venv/bin/python - <<'PY'
import importlib.metadata as metadata
for name in ("av", "uvloop", "orjson", "aiohttp", "asyncpg"):
    dist = metadata.distribution(name)
    tags = [line.split(": ", 1)[1] for line in (dist.read_text("WHEEL") or "").splitlines() if line.startswith("Tag:")]
    print(f"  {name} {dist.version}: {', '.join(tags)}")
PY
in_root /opt/djamms/venv/bin/python -m av --version | grep -E '^(PyAV|library license|libavcodec)'
echo "installed size (the venv's copy; the .deb also keeps their wheels in /usr/lib/djamms-edge/wheels):"
(cd "$root"/opt/djamms/venv/lib/python3*/site-packages && \
    for parts in "av av.libs" "uvloop" "orjson"; do
        # shellcheck disable=SC2086  # the words are the package's directories
        printf '  %-7s %5.1f MiB\n' "${parts%% *}" "$(du -sck $parts | tail -n 1 | awk '{print $1 / 1024}')"
    done)

step "a Pi 5's kernel (16 KiB pages) can map every binary in the venv (qemu-user cannot tell: it runs on 4 KiB)"
python3 - "$root/opt/djamms/venv/" <<'PY' || problems+=("binaries in the venv that a 16 KiB-page kernel cannot load")
import struct, sys
from pathlib import Path
PAGE = 16 * 1024  # a Raspberry Pi 5's kernel (Raspberry Pi OS's default there) uses 16 KiB pages
checked, bad = 0, []
for path in Path(sys.argv[1]).rglob("*"):
    if path.is_symlink() or not path.is_file():
        continue
    with path.open("rb") as f:
        head = f.read(64)
        if len(head) < 64 or head[:5] != b"\x7fELF\x02":  # 64-bit ELF only
            continue
        checked += 1
        phoff, = struct.unpack_from("<Q", head, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        kind, _, offset, vaddr, _, _, _, align = struct.unpack_from("<IIQQQQQQ", table, i * phentsize)
        if kind == 1 and (align < PAGE or (offset - vaddr) % PAGE):  # PT_LOAD
            bad.append(f"  {path}: a segment aligned to {align:#x}")
            break
print(f"  {checked} ELF files in the venv, {len(bad)} that a 16 KiB-page kernel cannot map")
for line in bad:
    print(line)
sys.exit(1 if bad else 0)
PY

step "djamms-edge analyze through PyAV: generated AAC, MP3, H.264+AAC (known cue points) and real recordings"
analysis=/tmp/arm64-check/analysis
media=$analysis/media  # the inputs alone (analyze is given all of them)
rm -rf "${root:?}$analysis"
mkdir -p "$root$media"
# 1.5 s of silence, 40 s of tone, 2 s of silence: the sound is from 1.5 s to 41.5 s. Longer than the head
# and tail windows together, so the tail is reached by seeking, as in a real track.
tone=(-f lavfi -i "anullsrc=r=48000:cl=stereo:d=1.5" -f lavfi -i "sine=f=440:d=40:r=48000"
      -f lavfi -i "anullsrc=r=48000:cl=stereo:d=2")
concat="[0:a][1:a][2:a]concat=n=3:v=0:a=1"
in_root ffmpeg -v error -y "${tone[@]}" -filter_complex "$concat" -c:a aac "$media/tone.m4a"
in_root ffmpeg -v error -y "${tone[@]}" -filter_complex "$concat" -c:a libmp3lame -b:a 128k "$media/tone.mp3"
in_root ffmpeg -v error -y "${tone[@]}" -f lavfi -i "testsrc2=s=64x64:r=5:d=43.5" -filter_complex "$concat[a]" \
    -map 3:v -map "[a]" -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -shortest "$media/tone.mp4"
default_tracks=""
for track in /usr/share/games/frozen-bubble/snd/frozen-mainzik-1p.ogg /usr/share/games/frozen-bubble/snd/introzik.ogg; do
    [ -e "$track" ] && default_tracks+="$track "
done
read -r -a tracks <<< "${ARM64_TRACKS:-$default_tracks}"
for track in "${tracks[@]}"; do
    cp "$track" "$root$media/real-$(basename "$track")"
done
if [ "${#tracks[@]}" -gt 0 ]; then  # the first one's last minute as an MP3 too: a real fade into MP3's padding
    in_root ffmpeg -v error -y -sseof -60 -i "$media/real-$(basename "${tracks[0]}")" -c:a libmp3lame -b:a 192k \
        "$media/real-$(basename "${tracks[0]%.*}")-end.mp3"
fi
start=$(date +%s)
in_root bash -c "cd $media && /usr/bin/djamms-edge analyze --json *" > "$root$analysis/arm64.json" \
    || problems+=("djamms-edge analyze failed on arm64")
echo "analyze of $(find "$root$media" -type f | wc -l) files took $(( $(date +%s) - start ))s under emulation"
if [ -x "$repo/.venv/bin/djamms-edge" ]; then  # the same files, the same command, on this machine
    (cd "$root$media" && "$repo/.venv/bin/djamms-edge" analyze --json -- *) > "$root$analysis/host.json" \
        || problems+=("djamms-edge analyze failed on $(uname -m)")
fi
python3 - "$root$analysis" <<'PY' || problems+=("cue points on arm64 are off (see the table above)")
import json, sys
from pathlib import Path
here = Path(sys.argv[1])
arm = {r["input"]: r for r in json.loads((here / "arm64.json").read_text())}
host = {r["input"]: r for r in json.loads((here / "host.json").read_text())} if (here / "host.json").exists() else {}
TRUTH, TRUTH_S, SAME_S = (1.5, 41.5), 0.02, 0.005  # known cue points (generated); agreement with this machine
bad = False
print(f"  {'input':28} {'start':>8} {'end':>9} {'duration':>9}   this machine ({'none' if not host else 'same files'})")
for name, r in sorted(arm.items()):
    if "error" in r:
        print(f"  {name:28} ERROR {r['error']}")
        bad = True
        continue
    line = f"  {name:28} {r['realStartOffset']:8.3f} {r['realEndOffset']:9.3f} {r['duration']:9.3f}"
    if name.startswith("tone."):
        off = max(abs(r["realStartOffset"] - TRUTH[0]), abs(r["realEndOffset"] - TRUTH[1]))
        line += f"   truth {TRUTH[0]}-{TRUTH[1]}: off by {off * 1000:.0f} ms"
        bad |= off > TRUTH_S
    if name in host:
        h = host[name]
        off = max(abs(r[k] - h[k]) for k in ("realStartOffset", "realEndOffset", "duration"))
        line += f"   {h['realStartOffset']:.3f} {h['realEndOffset']:.3f} {h['duration']:.3f} (differs by {off * 1000:.0f} ms)"
        bad |= off > SAME_S
    print(line)
sys.exit(1 if bad else 0)
PY

step "the hub on uvloop with orjson (scripts/hub-smoke.py: a throwaway hub on loopback in the chroot)"
start=$(date +%s)
in_root bash -c "cd /tmp && /opt/djamms/venv/bin/python /src/djamms-edge/scripts/hub-smoke.py" \
    || problems+=("the hub on arm64: scripts/hub-smoke.py failed")
echo "hub check took $(( $(date +%s) - start ))s under emulation"

step "audio-only demo for ${demo_seconds}s of playback (hub + edge daemon + libmpv with ao=null)"
set +e
in_root bash -c "cd /tmp/arm64-check && timeout $((demo_seconds + 600)) /opt/djamms/venv/bin/python -m djamms_edge.demo \
    --dir /tmp/arm64-check/demo --no-audio --no-video --seconds $demo_seconds --hub-port 18700 --status-port 18080 \
    --media-port 18701 --new-box-status-port 18081" 2>&1
status=$?
set -e
echo "demo exit status: $status"
step "played on arm64 (the edge's play history)"
in_root /opt/djamms/venv/bin/python - <<'PY'
import sqlite3
db = sqlite3.connect("/tmp/arm64-check/demo/run/edge-state/playback.db")
for title, start, end, reason in db.execute("SELECT title, started_at, ended_at, end_reason FROM plays ORDER BY started_at"):
    print(f"  {title}: {'%.1fs' % (end - start) if end else 'playing'} ({reason or 'until the demo stopped'})")
PY
[ "$status" -eq 0 ] || problems+=("the demo exited with status $status")
if [ "${#problems[@]}" -gt 0 ]; then
    step "FAILED on arm64"
    printf '  %s\n' "${problems[@]}"
    exit 1
fi
step "arm64: every check passed"
