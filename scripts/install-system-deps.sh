#!/usr/bin/env bash
# Install the Debian packages djamms-edge needs, only those missing.
# Works on Debian 12 and Raspberry Pi OS (bookworm); uses sudo when not root.
set -euo pipefail

packages=(
    ffmpeg            # analysis (ffmpeg/ffprobe) and yt-dlp post-processing
    libmpv2           # playback (python-mpv loads libmpv.so.2)
    libmpv-dev        # provides the unversioned libmpv.so python-mpv looks for
    libsystemd-dev    # systemd-python builds against it
    pkg-config
    gcc
    python3-dev
    python3-venv
)
if [ "${1:-}" = "--with-postgres" ]; then
    # scripts/test.sh passes this flag: the packages only the test suite needs.
    packages+=(
        postgresql
        chromium      # the status page's browser test (Debian's build; playwright never downloads one)
        systemd       # systemd-analyze/-sysusers/-tmpfiles for the unit and package tests (works without a running systemd)
        lintian       # the Debian package test
        wrk           # bench/hub_load.py's load generator (C, so it measures the hub, not the client)
        mpv           # bench/transitions.py's footprint baseline: the mpv player itself on the same files
        frozen-bubble-data  # real music with natural endings (Vorbis, GPL-2, 22 MB) for the cue-point tests
        zbar-tools    # zbarimg reads the request QR code back from what libmpv renders for the TV
        nginx-light   # docs/hub-deploy.md's reverse proxy, tested as documented (tests/hub/test_reverse_proxy.py)
    )
fi

missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing system packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The tests start nginx themselves; Debian starts the packaged service on port 80 when systemd runs. Stop and
# disable it only when this run installed it, so an nginx the machine already served with is left alone.
if [[ " ${missing[*]} " == *" nginx-light "* ]] && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now nginx.service >/dev/null 2>&1 || true
fi
