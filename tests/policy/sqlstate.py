"""Databases for the SQL tests, and their complete state (every table's schema and rows)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from goex_tools.policy.testbed import dump_database

SCHEMA = [
    "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER NOT NULL)",
    "CREATE TABLE audit_log (id INTEGER PRIMARY KEY, event TEXT NOT NULL)",
    "INSERT INTO items (id, name, qty) VALUES (1, 'apple', 5), (2, 'pear', 0), "
    "(3, 'plum', 7), (4, 'fig', 0), (5, 'kiwi', 2)",
    "INSERT INTO audit_log (id, event) VALUES (1, 'created')",
]


def seed(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in SCHEMA:
            conn.exec_driver_sql(statement)
    engine.dispose()


def state(url: str) -> dict[str, Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return dump_database(conn)
    finally:
        engine.dispose()
