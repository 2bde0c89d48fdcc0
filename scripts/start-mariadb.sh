#!/usr/bin/env bash
# Start a throw-away MariaDB server on 127.0.0.1 (user root, empty password, database `test`)
# in a temporary directory and print its SQLAlchemy URL. Stop it with:
#   kill $(cat <dir>/mariadbd.pid)      (the directory is printed on stderr)
# Usage: start-mariadb.sh [PORT] [--binlog]
#   --binlog: a server that writes a row-based binary log with full row images (log_bin,
#   binlog_format=ROW, binlog_row_image=FULL, binlog_row_metadata=FULL), which goex-tools
#   reads to undo MySQL/MariaDB writes (goex_tools/domains/sql/mysql_binlog.py).
# Needs Debian's `mariadb-server` package (its binaries, not its service).
set -euo pipefail
port=${1:-13306}  # below the ephemeral port range, so no client connection holds it
binlog=()
if [ "${2:-}" = "--binlog" ]; then
  binlog=(--log-bin=goex-bin --server-id=1 --binlog-format=ROW --binlog-row-image=FULL
          --binlog-row-metadata=FULL)
fi
dir=$(mktemp -d /tmp/goex-mariadb.XXXXXX)
user=$(id -un)
mariadb-install-db --no-defaults --datadir="$dir/data" --user="$user" \
  --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1
mariadbd --no-defaults --datadir="$dir/data" --user="$user" --port="$port" \
  --bind-address=127.0.0.1 --socket="$dir/mariadb.sock" --pid-file="$dir/mariadbd.pid" \
  --log-error="$dir/error.log" "${binlog[@]}" >>"$dir/error.log" 2>&1 &
for _ in $(seq 1 60); do
  if mariadb --no-defaults -h 127.0.0.1 -P "$port" -u root -e "CREATE DATABASE IF NOT EXISTS test" 2>/dev/null; then
    echo "throw-away MariaDB in $dir" >&2
    echo "mysql+pymysql://root@127.0.0.1:$port/test"
    exit 0
  fi
  sleep 0.5
done
echo "MariaDB did not start; see $dir/error.log" >&2
exit 1
