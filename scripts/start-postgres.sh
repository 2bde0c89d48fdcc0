#!/usr/bin/env bash
# Start a throw-away PostgreSQL server on 127.0.0.1 (trust auth, database `test`) in a
# temporary directory and print its SQLAlchemy URL. Stop it with:
#   pg_ctl -D <dir> stop      (the directory is printed on stderr)
# Needs Debian's `postgresql` package (its binaries, not its service).
set -euo pipefail
port=${1:-15432}  # below the ephemeral port range, so no client connection holds it
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
dir=$(mktemp -d /tmp/goex-pg.XXXXXX)
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$dir"
  as_pg=(runuser -u postgres --)
fi
"${as_pg[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
"${as_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
"${as_pg[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres test
echo "throw-away PostgreSQL in $dir/data" >&2
echo "postgresql+psycopg://postgres@127.0.0.1:$port/test"
