# Sourced: export GOEX_TEST_MYSQL_URL, pointing at a MySQL/MariaDB server that answers.
# Uses $GOEX_TEST_MYSQL_URL or the local server on 127.0.0.1:3306 when one answers;
# otherwise starts a throw-away MariaDB (scripts/start-mariadb.sh).
: "${GOEX_TEST_MYSQL_URL:=mysql+pymysql://root@127.0.0.1:3306/test}"
if ! .venv/bin/python - "$GOEX_TEST_MYSQL_URL" <<'PY' 2>/dev/null
import sys, sqlalchemy as sa
sa.create_engine(sys.argv[1]).connect().close()
PY
then
  echo "no MySQL/MariaDB answers at $GOEX_TEST_MYSQL_URL; starting a throw-away server" >&2
  GOEX_TEST_MYSQL_URL=$(bash scripts/start-mariadb.sh)
fi
export GOEX_TEST_MYSQL_URL
