#!/usr/bin/env bash
# Run the whole test suite (lint, types, pytest). Called by `make test` and CI.
# pytest's exit 5 ("no tests collected") is a failure here like any other non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${VENV:-.venv}"

"$venv/bin/ruff" check djamms_edge tests bench
"$venv/bin/mypy"

mkdir -p test-artifacts
exec "$venv/bin/python" -m pytest "$@"
