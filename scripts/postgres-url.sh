# Sourced: export GOEX_TEST_POSTGRES_URL, pointing at a server that answers.
# Uses $GOEX_TEST_POSTGRES_URL or the local server on 127.0.0.1:5432 when one answers;
# otherwise starts a throw-away server (scripts/start-postgres.sh).
source scripts/server-url.sh
server_url GOEX_TEST_POSTGRES_URL postgresql+psycopg://postgres@127.0.0.1:5432/test \
  start-postgres.sh PostgreSQL
