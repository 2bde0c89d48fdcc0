#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine, then run it.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k journal`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
source scripts/postgres-url.sh
source scripts/mysql-url.sh
source scripts/mysql-binlog-url.sh  # a server with a row-based binary log
source scripts/container-engine-url.sh  # the docker sandbox's tests need one
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
