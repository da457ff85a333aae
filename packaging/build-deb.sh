#!/usr/bin/env bash
# Build dist/djamms-edge_<version>_<arch>.deb with dpkg-deb (no debhelper, no network at install time).
#
# The package ships wheels of the application and every Python dependency, built here with the
# target's own interpreter (/usr/bin/python3) and pinned to the versions in the tested .venv when
# there is one; postinst makes /opt/djamms/venv from them with `pip --no-index`. See README.md.
#
# Environment: WHEELHOUSE=DIR reuses wheels built earlier (pip skips what is already there);
# DEB_BUILD_DIR (default build/deb) and DEB_OUT_DIR (default dist) move the scratch and output.
set -euo pipefail
for var in WHEELHOUSE DEB_BUILD_DIR DEB_OUT_DIR; do
    [ -z "${!var:-}" ] || printf -v "$var" '%s' "$(realpath -m "${!var}")"
done
cd "$(dirname "$0")/.."
repo=$PWD

version=$(/usr/bin/python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
arch=$(dpkg --print-architecture)
package=djamms-edge
build=${DEB_BUILD_DIR:-$repo/build/deb}
root=$build/root
wheelhouse=${WHEELHOUSE:-$build/wheelhouse}
out=${DEB_OUT_DIR:-$repo/dist}/${package}_${version}_${arch}.deb

rm -rf "$root"
mkdir -p "$root/DEBIAN" "$wheelhouse" "$(dirname "$out")"

# --- wheels, built by the interpreter the box will run -------------------------------------------
[ -x "$build/python/bin/pip" ] || /usr/bin/python3 -m venv "$build/python"
# The build tools live here (no per-build isolated environment), so a warm wheelhouse builds offline;
# once satisfied, this asks no index.
"$build/python/bin/pip" install --quiet --disable-pip-version-check "setuptools>=68" wheel
constraints=$build/constraints.txt
: > "$constraints"
if [ -x "$repo/.venv/bin/pip" ]; then
    # Ship exactly the dependency versions the test suite ran against.
    "$repo/.venv/bin/pip" freeze --exclude-editable | grep -v ' @ ' > "$constraints" || true
fi
# Build the app from a clean copy: an in-tree setuptools build reuses build/lib, where modules
# deleted from the source would linger and end up in the wheel.
rm -rf "$build/src"
mkdir -p "$build/src"
cp -r pyproject.toml README.md djamms_edge "$build/src/"
find "$build/src" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
wheel_options=(--quiet --disable-pip-version-check --no-input --no-build-isolation
               --wheel-dir "$wheelhouse" --find-links "$wheelhouse" --constraint "$constraints")
# Offline first: when the wheelhouse already holds every dependency, no index is needed at all.
if ! "$build/python/bin/pip" wheel "${wheel_options[@]}" --no-index "$build/src[systemd]" 2>/dev/null; then
    "$build/python/bin/pip" wheel "${wheel_options[@]}" "$build/src[systemd]"
fi
# Exactly the wheels the app needs (the wheelhouse may hold older builds): ask pip which it would install.
mkdir -p "$root/usr/lib/$package/wheels"
"$build/python/bin/pip" install --quiet --disable-pip-version-check --no-index --find-links "$wheelhouse" \
    --dry-run --ignore-installed --report "$build/install-report.json" "$package[systemd]==$version"
/usr/bin/python3 - "$build/install-report.json" "$wheelhouse" "$root/usr/lib/$package/wheels" <<'PY'
import json, shutil, sys
from pathlib import Path
from urllib.parse import unquote, urlparse
report, wheelhouse, dest = json.load(open(sys.argv[1])), Path(sys.argv[2]), Path(sys.argv[3])
for item in report["install"]:
    wheel = Path(unquote(urlparse(item["download_info"]["url"]).path))
    assert wheel.parent == wheelhouse and wheel.suffix == ".whl", wheel
    shutil.copy2(wheel, dest / wheel.name)
PY

# --- files ---------------------------------------------------------------------------------------
install -d "$root/lib/systemd/system" "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d" \
    "$root/etc/djamms" "$root/usr/share/doc/$package" "$root/usr/bin" "$root/usr/share/lintian/overrides"
install -m 0644 systemd/*.service systemd/*.timer systemd/*.path "$root/lib/systemd/system/"
install -m 0644 systemd/sysusers.d/djamms.conf "$root/usr/lib/sysusers.d/djamms.conf"
install -m 0644 systemd/tmpfiles.d/djamms-edge.conf "$root/usr/lib/tmpfiles.d/djamms-edge.conf"
install -m 0644 config.example.toml "$root/etc/djamms/config.toml"
install -m 0644 packaging/debian/copyright "$root/usr/share/doc/$package/copyright"
install -m 0644 packaging/debian/lintian-overrides "$root/usr/share/lintian/overrides/$package"
gzip -9n < packaging/debian/changelog > "$root/usr/share/doc/$package/changelog.gz"
chmod 0644 "$root/usr/share/doc/$package/changelog.gz"
for program in djamms-edge djamms-hub; do
    ln -s "/opt/djamms/venv/bin/$program" "$root/usr/bin/$program"
done

# --- control -------------------------------------------------------------------------------------
for script in postinst prerm postrm; do
    sed "s/@VERSION@/$version/g" "packaging/debian/$script" > "$root/DEBIAN/$script"
    chmod 0755 "$root/DEBIAN/$script"
done
install -m 0644 packaging/debian/conffiles "$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" packaging/debian/control \
    > "$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
    > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"

# gzip, not xz: the payload is nearly all wheels (zip files, compressed already; deno's alone is 42 MB), which
# xz cannot shrink but spends half a minute of CPU on (many minutes on a Pi or under qemu).
dpkg-deb --root-owner-group -Zgzip --build "$root" "$out" >/dev/null
echo "$out"
