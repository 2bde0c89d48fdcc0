#!/usr/bin/env bash
# Set up .venv and run the main demo (offline; uses a real model if OPENAI_API_KEY is set).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
