# Sourced: export GOEX_TEST_MYSQL_BINLOG_URL, pointing at a MySQL/MariaDB server that writes a
# row-based binary log with full row images (the undo of MySQL writes reads it). Uses
# $GOEX_TEST_MYSQL_BINLOG_URL when a server answers there with log_bin ON, binlog_format ROW
# and binlog_row_image FULL; otherwise starts a throw-away MariaDB so configured on port 13307
# (scripts/start-mariadb.sh --binlog). Most servers run without a binary log (the one on
# 127.0.0.1:3306 here, and CI's), so the suite brings its own.
if ! .venv/bin/python - "${GOEX_TEST_MYSQL_BINLOG_URL:-}" <<'PY' 2>/dev/null
import sys, sqlalchemy as sa
with sa.create_engine(sys.argv[1]).connect() as conn:
    found = conn.exec_driver_sql("SELECT @@log_bin, @@binlog_format, @@binlog_row_image").one()
assert tuple(map(str, found)) == ("1", "ROW", "FULL"), found
PY
then
  echo "no MySQL/MariaDB with a row-based binary log; starting a throw-away server" >&2
  GOEX_TEST_MYSQL_BINLOG_URL=$(bash scripts/start-mariadb.sh 13307 --binlog)
fi
export GOEX_TEST_MYSQL_BINLOG_URL
