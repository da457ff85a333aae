#!/usr/bin/env bash
# The quick start's second command, and CI's: install what is missing (with the test-only packages),
# then lint, type checks and the whole test suite (arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-postgres
exec scripts/run-tests.sh "$@"
