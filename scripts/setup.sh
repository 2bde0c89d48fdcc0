#!/usr/bin/env bash
# Create .venv with goex-tools and its integrations, and install bubblewrap (the default
# sandbox) when missing; with --dev, also the test tools and the Debian packages the tests use
# (git, PostgreSQL, MariaDB, nginx, chromium: their binaries; the tests start throw-away
# servers if none runs).
set -euo pipefail
cd "$(dirname "$0")/.."
dev=${1:-}

missing=()
command -v bwrap >/dev/null || missing+=(bubblewrap)
if [ "$dev" = "--dev" ]; then
  command -v git >/dev/null || missing+=(git)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  command -v mariadbd >/dev/null || missing+=(mariadb-server)
  [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || missing+=(nginx-light)  # path tests
  command -v npm >/dev/null || missing+=(nodejs npm)  # json-server, Prism, oidc-provider (npm)
  command -v chromium >/dev/null || missing+=(chromium)  # the review page's browser tests
  command -v chromedriver >/dev/null || missing+=(chromium-driver)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  elif [ "$dev" = "--dev" ]; then
    echo "please install: ${missing[*]} (Debian packages)" >&2; exit 1
  else
    echo "note: ${missing[*]} not installed; the demo's shell command runs unsandboxed" >&2
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
extras=langchain,llamaindex
[ "$dev" = "--dev" ] && extras=dev
packages=(-e ".[$extras]")
for integration in integrations/*/; do
  [ -f "$integration/pyproject.toml" ] && packages+=(-e "${integration%/}")
done
# the demo's real-model path (used when OPENAI_API_KEY or OPENAI_BASE_URL is set)
packages+=(-e "integrations/langchain-goex[agents,openai]")
.venv/bin/python -m pip install -q "${packages[@]}"
if [ "$dev" = "--dev" ]; then
  # the npm packages of the HTTP tests (GitHub's OpenAPI description, Prism, oidc-provider),
  # pinned by tests/support/npm/package-lock.json; cached, so a second run costs nothing
  .venv/bin/python -m tests.support.npm >/dev/null
fi
