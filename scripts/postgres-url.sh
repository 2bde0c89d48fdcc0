# Sourced: export GOEX_TEST_POSTGRES_URL, pointing at a server that answers.
# Uses $GOEX_TEST_POSTGRES_URL or the local server on 127.0.0.1:5432 when one answers;
# otherwise starts a throw-away server (scripts/start-postgres.sh).
: "${GOEX_TEST_POSTGRES_URL:=postgresql+psycopg://postgres@127.0.0.1:5432/test}"
if ! .venv/bin/python - "$GOEX_TEST_POSTGRES_URL" <<'PY' 2>/dev/null
import sys, sqlalchemy as sa
sa.create_engine(sys.argv[1]).connect().close()
PY
then
  echo "no PostgreSQL answers at $GOEX_TEST_POSTGRES_URL; starting a throw-away server" >&2
  GOEX_TEST_POSTGRES_URL=$(bash scripts/start-postgres.sh)
fi
export GOEX_TEST_POSTGRES_URL
