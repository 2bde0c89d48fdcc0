# Sourced: export GOEX_TEST_MYSQL_URL, pointing at a MySQL/MariaDB server that answers.
# Uses $GOEX_TEST_MYSQL_URL or the local server on 127.0.0.1:3306 when one answers;
# otherwise starts a throw-away MariaDB (scripts/start-mariadb.sh).
source scripts/server-url.sh
server_url GOEX_TEST_MYSQL_URL mysql+pymysql://root@127.0.0.1:3306/test \
  start-mariadb.sh MySQL/MariaDB
