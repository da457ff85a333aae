#!/usr/bin/env bash
# The quick start's first command: install what is missing, then run a hub and an edge daemon playing
# generated demo media (options: .venv/bin/python -m djamms_edge.demo --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec "${VENV:-.venv}/bin/python" -m djamms_edge.demo "$@"
