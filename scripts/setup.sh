#!/usr/bin/env bash
# Install what is missing: Debian packages (only those not installed) and the virtualenv in .venv.
# --with-postgres adds what only the tests and benches need. Needs nothing but bash and apt: a fresh
# Debian 12 / Raspberry Pi OS has no `make`, so the quick start calls this, not the Makefile.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${VENV:-.venv}"
python="${PYTHON:-python3}"
stamp="$venv/.installed-stamp"

scripts/install-system-deps.sh "$@"
# Rebuilt when pyproject.toml changed since the last install (its dependencies may have).
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e '.[dev,systemd]'
    touch "$stamp"
fi
