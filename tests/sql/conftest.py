"""Real databases for the sql domain: an SQLite file and a fresh PostgreSQL database per test,
both with the same shop schema (foreign keys with ON DELETE CASCADE, a trigger writing to
another table, defaults, generated keys, a table without a primary key), and a dump of EVERY
table for before/after comparisons."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import goex_tools as goex
from goex_tools import Journal
from goex_tools.domains.sql.statements import split

SQLITE_SCHEMA = """
PRAGMA foreign_keys = ON;
CREATE TABLE customers (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,
                        tier TEXT NOT NULL DEFAULT 'basic', photo BLOB);
CREATE TABLE orders (id INTEGER PRIMARY KEY AUTOINCREMENT,
                     customer_id INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
                     amount NUMERIC NOT NULL, status TEXT NOT NULL DEFAULT 'new');
CREATE TABLE order_lines (order_id INTEGER NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
                          line INTEGER NOT NULL, sku TEXT NOT NULL, PRIMARY KEY (order_id, line));
CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT NOT NULL);
CREATE TABLE tags (label TEXT, weight INTEGER);
CREATE TRIGGER orders_audit AFTER UPDATE OF status ON orders BEGIN
    INSERT INTO audit (what) VALUES ('order ' || NEW.id || ': '
        || OLD.status || ' -> ' || NEW.status);
END;
CREATE TRIGGER customers_audit AFTER DELETE ON customers BEGIN
    INSERT INTO audit (what) VALUES ('customer ' || OLD.id || ' deleted');
END;
"""

POSTGRES_SCHEMA = """
CREATE TABLE customers (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL,
                        tier text NOT NULL DEFAULT 'basic', photo bytea,
                        joined timestamptz NOT NULL DEFAULT '2024-01-02 03:04:05.123456+00',
                        shout text GENERATED ALWAYS AS (upper(name)) STORED);
CREATE TABLE orders (id serial PRIMARY KEY,
                     customer_id integer NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
                     amount numeric(12, 4) NOT NULL, status text NOT NULL DEFAULT 'new',
                     extra jsonb);
CREATE TABLE order_lines (order_id integer NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
                          line integer NOT NULL, sku text NOT NULL, PRIMARY KEY (order_id, line));
CREATE TABLE audit (id bigserial PRIMARY KEY, what text NOT NULL);
CREATE TABLE tags (label text, weight integer);
CREATE FUNCTION orders_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit (what) VALUES ('order ' || NEW.id || ': '
        || OLD.status || ' -> ' || NEW.status);
    RETURN NEW;
END $$;
CREATE TRIGGER orders_audit AFTER UPDATE OF status ON orders
    FOR EACH ROW EXECUTE FUNCTION orders_audit();
CREATE FUNCTION customers_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit (what) VALUES ('customer ' || OLD.id || ' deleted');
    RETURN OLD;
END $$;
CREATE TRIGGER customers_audit AFTER DELETE ON customers
    FOR EACH ROW EXECUTE FUNCTION customers_audit();
"""

SEED = """
INSERT INTO customers (name, tier) VALUES ('ada', 'gold'), ('bob', 'basic'), ('cy', 'basic');
INSERT INTO orders (customer_id, amount, status) VALUES
    (1, 10.5, 'new'), (1, 20, 'paid'), (2, 7.25, 'new'), (3, 99.99, 'paid');
INSERT INTO order_lines VALUES (1, 1, 'pen'), (1, 2, 'ink'), (2, 1, 'pad'), (3, 1, 'pen'),
    (4, 1, 'lamp');
INSERT INTO tags VALUES ('x', 1), ('x', 1), ('y', 2);
"""

Dump = dict[str, list[tuple[Any, ...]]]


class RefuseIrreversible:
    """A gate that refuses what cannot be undone (the policy the issue asks to be possible)."""

    def decide(self, proposal: goex.Proposal, run: goex.RunContext) -> goex.Decision:
        ok = proposal.reversibility is not goex.Reversibility.IRREVERSIBLE
        return goex.Decision(allowed=ok, rule="no-irreversible", reason="cannot be undone")


def dump_all(url: str) -> Dump:
    """Every table of the database (in every schema on PostgreSQL; SQLite's sqlite_sequence
    included), rows sorted."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    quote = engine.dialect.identifier_preparer.quote
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            names = [(None, n) for n in inspector.get_table_names()]
            if engine.dialect.name == "sqlite":
                names += [
                    (None, n)
                    for (n,) in conn.exec_driver_sql(
                        "SELECT name FROM sqlite_master WHERE type = 'table' "
                        "AND name LIKE 'sqlite%'"
                    )
                ]
            if engine.dialect.name == "postgresql":
                names = []
                for schema in inspector.get_schema_names():
                    if schema != "information_schema" and not schema.startswith("pg_"):
                        names += [(schema, n) for n in inspector.get_table_names(schema=schema)]
            dump: Dump = {}
            for schema, name in names:
                qualified = f"{quote(schema)}.{quote(name)}" if schema else quote(name)
                rows = conn.exec_driver_sql(f"SELECT * FROM {qualified}")
                key = name if schema in (None, "public") else f"{schema}.{name}"
                dump[key] = sorted((tuple(r) for r in rows), key=repr)
            return dict(sorted(dump.items()))
    finally:
        engine.dispose()


def execute_script(url: str, script: str) -> None:
    """Run SQL as someone else would: its own connection, committed."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            raw = conn.connection.driver_connection
            if engine.dialect.name == "sqlite":
                raw.executescript(script)  # type: ignore[union-attr]
            elif engine.dialect.name in ("mysql", "mariadb"):  # one statement per call
                for statement in split(script, "mysql"):
                    conn.exec_driver_sql(statement.replace("%", "%%"))
            else:
                conn.exec_driver_sql(script.replace("%", "%%"))
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/shop.db"
    execute_script(url, SQLITE_SCHEMA + SEED)
    return url


@pytest.fixture
def postgres_url(pg_url: str) -> str:
    execute_script(pg_url, POSTGRES_SCHEMA + SEED)
    return pg_url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The shop database, on SQLite and on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    store = Journal(f"sqlite:///{tmp_path}/journal.db")
    yield store
    store.close()


MYSQL_URL = os.environ.get("GOEX_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def mysql_database(server: str, script: str, hint: str = "") -> Iterator[str]:
    """A new database on a MySQL/MariaDB server, made by `script`; dropped afterwards."""
    admin = sa.create_engine(server, poolclass=sa.pool.NullPool)
    name = f"goex_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{name}`")
    except sa.exc.OperationalError as exc:
        pytest.fail(f"MySQL/MariaDB at {server} does not answer ({exc.orig}){hint}")
    url = sa.engine.make_url(server).set(database=name).render_as_string(hide_password=False)
    execute_script(url, script)
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
    admin.dispose()


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A new MySQL/MariaDB database with the shop's tables (no triggers); dropped afterwards."""
    yield from mysql_database(
        MYSQL_URL,
        "CREATE TABLE customers (id int AUTO_INCREMENT PRIMARY KEY, name varchar(50) NOT NULL,"
        " tier varchar(20) NOT NULL DEFAULT 'basic') ENGINE=InnoDB;"
        "INSERT INTO customers (name, tier) VALUES ('ada', 'gold'), ('bob', 'basic');",
    )


ROOT = Path(__file__).resolve().parents[2]


def run_killed(script: str, *args: str) -> None:
    """Run a Python script that SIGKILLs itself at a chosen point, and check that it did."""
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -9, proc.stderr


MYSQL_BINLOG_URL = os.environ.get(
    "GOEX_TEST_MYSQL_BINLOG_URL", "mysql+pymysql://root@127.0.0.1:13307/test"
)

# The shop on MySQL/MariaDB: ON DELETE CASCADE, audit triggers, a generated column, a
# table without a primary key.
MYSQL_SCHEMA = """
CREATE TABLE customers (id int AUTO_INCREMENT PRIMARY KEY, name varchar(50) NOT NULL,
    tier varchar(20) NOT NULL DEFAULT 'basic', photo blob,
    shout varchar(50) AS (upper(name)) VIRTUAL) ENGINE=InnoDB;
CREATE TABLE orders (id int AUTO_INCREMENT PRIMARY KEY, customer_id int NOT NULL,
    amount decimal(12,4) NOT NULL, status varchar(20) NOT NULL DEFAULT 'new',
    FOREIGN KEY (customer_id) REFERENCES customers(id) ON DELETE CASCADE) ENGINE=InnoDB;
CREATE TABLE order_lines (order_id int NOT NULL, line int NOT NULL, sku varchar(20) NOT NULL,
    PRIMARY KEY (order_id, line),
    FOREIGN KEY (order_id) REFERENCES orders(id) ON DELETE CASCADE) ENGINE=InnoDB;
CREATE TABLE audit (id bigint AUTO_INCREMENT PRIMARY KEY, what text NOT NULL) ENGINE=InnoDB;
CREATE TABLE tags (label varchar(20), weight int) ENGINE=InnoDB;
CREATE TRIGGER orders_audit AFTER UPDATE ON orders FOR EACH ROW
    INSERT INTO audit (what) SELECT CONCAT('order ', NEW.id, ': ', OLD.status, ' -> ',
    NEW.status) FROM DUAL WHERE NOT (NEW.status <=> OLD.status);
CREATE TRIGGER customers_audit AFTER DELETE ON customers FOR EACH ROW
    INSERT INTO audit (what) VALUES (CONCAT('customer ', OLD.id, ' deleted'));
"""


@pytest.fixture
def binlog_url() -> Iterator[str]:
    """A new database with the shop on the MySQL/MariaDB server that writes a row-based
    binary log (scripts/mysql-binlog-url.sh starts one); dropped afterwards."""
    hint = (
        "; run the tests with `bash scripts/test.sh`, which starts a server with a row-based "
        "binary log, or set GOEX_TEST_MYSQL_BINLOG_URL"
    )
    yield from mysql_database(MYSQL_BINLOG_URL, MYSQL_SCHEMA + SEED, hint)
