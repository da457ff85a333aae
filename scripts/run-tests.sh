#!/usr/bin/env bash
# Run the whole test suite (lint, types, pytest) once set up. Called by scripts/test.sh (the README and CI).
# pytest's exit 5 ("no tests collected") is a failure here like any other non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${VENV:-.venv}"

"$venv/bin/ruff" check djamms_edge tests bench
"$venv/bin/mypy"

mkdir -p test-artifacts

# A private PostgreSQL cluster for the tests of the PostgreSQL store, stopped however pytest ends.
# Without one those tests skip locally and fail under CI (see tests/pg_cluster.py).
if [ -z "${DJAMMS_TEST_PG_URL:-}" ]; then
    pg_dir="$(mktemp -d /tmp/djamms-pg.XXXXXX)"
    trap 'scripts/pg-test-cluster.sh stop "$pg_dir"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    if DJAMMS_TEST_PG_URL="$(scripts/pg-test-cluster.sh start "$pg_dir")"; then
        export DJAMMS_TEST_PG_URL
    else
        unset DJAMMS_TEST_PG_URL
    fi
fi
"$venv/bin/python" -m pytest "$@"
