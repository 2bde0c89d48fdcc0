"""The journal's tables: runs, their steps, and every status change of a step (events)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

runs_table = sa.Table(
    "goex_runs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.Text, nullable=False, default=""),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
)

steps_table = sa.Table(
    "goex_steps",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("goex_runs.id"), nullable=False, index=True),
    sa.Column("parent_id", sa.String(64), index=True),
    sa.Column("tool", sa.Text, nullable=False),
    sa.Column("domain", sa.String(64), nullable=False),
    sa.Column("inputs", sa.JSON, nullable=False),
    sa.Column("output", sa.JSON),
    sa.Column("effect", sa.JSON, nullable=False),
    sa.Column("compensation", sa.JSON),
    sa.Column("reversibility", sa.String(32), nullable=False),
    sa.Column("status", sa.String(32), nullable=False, index=True),
    sa.Column("decision", sa.JSON),
    sa.Column("error", sa.Text),
    sa.Column("notes", sa.JSON, nullable=False),
    sa.Column("owner", sa.String(255), nullable=False, default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# What a rollback counts in a run (is any effect left?) without reading the rows: SQLite
# keeps a row's columns in order, so the status of a step whose inputs hold 256 KiB sits
# past their overflow pages (a run of 32 such steps made `undo_step` of a small one 5x slower).
run_status_index = sa.Index(
    "ix_goex_steps_run_status",
    steps_table.c.run_id,
    steps_table.c.status,
    steps_table.c.reversibility,
)
# Indexes added since journals were first written: made on a journal that predates them.
metadata.info["added_indexes"] = [run_status_index]

events_table = sa.Table(
    "goex_events",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("step_id", sa.String(64), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
)
