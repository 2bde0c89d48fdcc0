"""journal_overview: runs with their step counts, found by what they touched, and the mark
that changes with the journal (SQLite and PostgreSQL)."""

from __future__ import annotations

import contextlib

from goex_tools import Journal, Proposal, Reversibility, run
from goex_tools.journal_overview import journal_mark, run_summaries


def effect(ctx: object, tool: str, inputs: dict[str, object], fail: bool = False) -> None:
    proposal = Proposal(
        tool=tool,
        domain="test",
        inputs=inputs,
        reversibility=Reversibility.IRREVERSIBLE,
        predicted={"host": "api.example.com"} if tool == "http_request" else {},
    )

    def act(handle: object) -> None:
        if fail:
            raise RuntimeError("it failed")

    with contextlib.suppress(RuntimeError):  # a failed step is journaled as failed
        ctx.execute(proposal, act)  # type: ignore[attr-defined]


def test_run_summaries_count_steps_by_status_newest_run_first(journal: Journal) -> None:
    with run("first", journal=journal) as first:
        effect(first, "write_file", {"path": "notes/plan.md"})
        effect(first, "run_sql", {"sql": "DELETE FROM orders"}, fail=True)
    with run("second", journal=journal, metadata={"framework": "langchain"}) as second:
        effect(second, "http_request", {"url": "https://api.example.com/items/1"})
    listed = run_summaries(journal)
    assert [s.run.id for s in listed] == [second.id, first.id]
    assert listed[1].counts == {"irreversible": 1, "failed": 1} and listed[1].calls == 2
    assert listed[0].framework == "langchain" and listed[1].framework == ""


def test_run_summaries_find_runs_by_name_tool_path_table_and_host(journal: Journal) -> None:
    with run("Spring sale", journal=journal) as first:
        effect(first, "write_file", {"path": "notes/plan_100%.md"})
        effect(first, "run_sql", {"sql": "DELETE FROM orders"})
    with run("catalog", journal=journal) as second:
        effect(second, "http_request", {"url": "https://api.example.com/items/1"})

    def found(text: str) -> list[str]:
        return [s.run.id for s in run_summaries(journal, search=text)]

    assert found("spring") == [first.id]  # the name, any case
    assert found("RUN_SQL") == [first.id]  # a tool
    assert found("notes/plan") == [first.id]  # a path
    assert found("orders") == [first.id]  # a table
    assert found("api.example.com") == [second.id]  # a host
    assert found("100%") == [first.id]  # taken literally: % and _ are no wildcards here
    assert found("%") == [first.id]  # only the path holds one
    assert found("plan%md") == [] and found("plan_1") == [first.id]
    assert found("nowhere") == []


def test_journal_mark_changes_with_steps_and_run_status(journal: Journal) -> None:
    before = journal_mark(journal)
    with run("r", journal=journal) as ctx:
        started = journal_mark(journal)
        effect(ctx, "write_file", {"path": "a"})
        stepped = journal_mark(journal)
    ended = journal_mark(journal)
    assert len({before, started, stepped, ended}) == 4
    assert journal_mark(journal) == ended
