#!/usr/bin/env bash
# Check that the Pi (arm64, Debian 12) is still a first-class target, on any amd64 Debian 12 machine:
# builds an arm64 bookworm chroot run under qemu-user (binfmt), builds our .deb *inside* it
# (packaging/build-deb.sh, so every wheel is an aarch64 one, systemd-python compiled there), installs
# it with apt (dependencies resolved from Debian's arm64 archive), then runs `djamms-edge doctor`,
# `djamms-edge analyze` on a generated file and an audio-only demo (hub + edge daemon + libmpv, ao=null).
#
# Not part of CI: under emulation on 2 cores it takes a long while (the chroot ~10 min, the wheels and
# the install ~15 min, the demo a minute or two). Needs root, network to Debian's archive and PyPI.
#
#   scripts/arm64-check.sh              # everything; the chroot is kept and reused by later runs
#   scripts/arm64-check.sh --prepare    # only build the chroot and install its Debian packages
#
# Environment: ARM64_ROOT (default /var/tmp/djamms-arm64-bookworm), DEBIAN_MIRROR, DEMO_SECONDS (default 45).
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

step "djamms-edge analyze on a generated track"
in_root ffmpeg -v error -y -f lavfi -i "anullsrc=r=48000:cl=stereo:d=1.5" -f lavfi -i "sine=f=440:d=8" \
    -f lavfi -i "anullsrc=r=48000:cl=stereo:d=2" -filter_complex "[0:a][1:a][2:a]concat=n=3:v=0:a=1" \
    -c:a aac /tmp/arm64-check/track.m4a
start=$(date +%s)
in_root /usr/bin/djamms-edge analyze /tmp/arm64-check/track.m4a
echo "analyze took $(( $(date +%s) - start ))s under emulation"

step "audio-only demo for ${demo_seconds}s of playback (hub + edge daemon + libmpv with ao=null)"
set +e
in_root bash -c "cd /tmp/arm64-check && timeout $((demo_seconds + 600)) /opt/djamms/venv/bin/python -m djamms_edge.demo \
    --dir /tmp/arm64-check/demo --no-audio --no-video --seconds $demo_seconds --hub-port 18700 --status-port 18080 \
    --media-port 18701" 2>&1
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
exit "$status"
