"""Proving that PostgreSQL row capture saw every write of a batch, before it commits.

Row capture records what its triggers see. Some writes no row trigger sees: TRUNCATE, DDL
(ALTER TABLE ... DROP COLUMN rewrites or hides data), writes to tables that get no capture
trigger (a table someone put in `information_schema`), a trigger disabled by the batch. A
function or trigger can run any of them where the classifier cannot look. PostgreSQL counts,
per table, the tuples the current transaction inserted, updated and deleted
(`pg_stat_xact_all_tables`), whoever did it. Before COMMIT these counters must say exactly
what the log says: no system table changed since the capture was installed, and every other
table changed by exactly the logged events. Otherwise the batch is rolled back and the step
fails, naming the tables.

The counters count attempts: a write rolled back by a subtransaction (a PL/pgSQL EXCEPTION
block that swallowed an error) is counted but not logged, and fails the batch too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

# Tables with tuples written in this transaction (TOAST tables follow their table), and
# whether each is a system table; goex's own log is left out.
COUNTERS = """SELECT schemaname, relname, n_tup_ins, n_tup_upd, n_tup_del,
       schemaname IN ('pg_catalog', 'information_schema')
FROM pg_stat_xact_all_tables
WHERE n_tup_ins + n_tup_upd + n_tup_del > 0 AND schemaname !~ '^pg_toast'
  AND relid IS DISTINCT FROM to_regclass('pg_temp.goex_changes')"""

Counts = dict[tuple[str, str], tuple[int, int, int]]  # (schema, table) -> ins, upd, del
OPS = ("insert", "update", "delete")


def counts(rows: Iterable[Sequence[Any]]) -> Counts:
    """COUNTERS rows by table: the baseline once the capture is installed. (The counters are
    not zero at the start of a transaction: a session's counts reach the shared statistics
    at most once a second, and until then they add up across its transactions.)"""
    return {(r[0], r[1]): (int(r[2]), int(r[3]), int(r[4])) for r in rows}


def unseen_writes(
    baseline: Counts, rows: Iterable[Sequence[Any]], logged: Iterable[tuple[str, str, str, int]]
) -> list[str]:
    """What the counters saw that the log did not: one description per table (empty when
    capture saw everything). `logged`: (schema, table, op, count) of the log's runs."""
    log: Counter[tuple[str, str, str]] = Counter()
    for schema, table, op, count in logged:
        log[(schema, table, op)] += count
    found: list[str] = []
    seen: set[tuple[str, str]] = set()
    for schema, table, ins, upd, dele, system in rows:
        where = (schema, table)
        seen.add(where)
        before = baseline.get(where, (0, 0, 0))
        counted = (int(ins) - before[0], int(upd) - before[1], int(dele) - before[2])
        expected = (0, 0, 0)
        if not system:
            expected = (log[(*where, "insert")], log[(*where, "update")], log[(*where, "delete")])
        if counted != expected:
            found.append(f"{schema}.{table} ({_delta(counted, expected)})")
    for (schema, table, op), count in log.items():  # logged, but not counted at all
        if (schema, table) not in seen and count:
            found.append(f"{schema}.{table} ({count} {op}s logged, none counted)")
    return found


def _delta(counted: tuple[int, int, int], expected: tuple[int, int, int]) -> str:
    parts = [
        f"{c - e} {verb} more than recorded"
        for c, e, verb in zip(counted, expected, ("inserted", "updated", "deleted"), strict=True)
        if c != e
    ]
    return ", ".join(parts)


def refusal(tables: list[str]) -> str:
    """The error a batch with unseen writes fails with."""
    system = [t for t in tables if t.startswith(("pg_catalog.", "information_schema."))]
    why = (
        "the batch changed the schema or a system table (DDL or TRUNCATE, perhaps run by a "
        "function or trigger), which row capture cannot undo"
        if system
        else "the batch wrote rows that row capture did not record (a write around the "
        "capture triggers, or one rolled back inside a subtransaction)"
    )
    shown = "; ".join(tables[:8]) + (f"; and {len(tables) - 8} more" if len(tables) > 8 else "")
    return f"{why}: {shown}; the batch was rolled back, nothing changed"
