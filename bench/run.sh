#!/usr/bin/env bash
# Runs the benchmark harness (bench/bench.py) with Python 3 from the system, installing it first
# when it is missing (the harness uses the standard library only).
#   bench/run.sh [--smoke] --port PORT --dir DATADIR --out REPORT.md --svg CHART.svg
#   bench/run.sh --instructions [--smoke] --port PORT --dir DATADIR --out REPORT.md  (bench/instructions.py)
#   bench/run.sh --citus --port PORT --dir DIR --out REPORT.md --json RESULTS.json   (bench/citus.py)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v python3 >/dev/null 2>&1; then
    echo "installing python3 (the benchmark harness needs it)"
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3 >/dev/null
fi
if [ "${1:-}" = --citus ]; then
    shift
    exec python3 bench/citus.py "$@"
fi
if [ "${1:-}" = --instructions ]; then
    shift
    exec python3 bench/instructions.py "$@"
fi
exec python3 bench/bench.py "$@"
