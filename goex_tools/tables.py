"""How the review views (a run, a thread) render in Jupyter: a titled HTML table."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

__all__ = ["html_table"]


def html_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """`title` in bold above a table of `rows` under `columns`, every value escaped."""
    head = "".join(f"<th style='text-align:left'>{c}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(v)}</td>" for v in row)
        + "</tr>"
        for row in rows
    )  # fmt: skip
    return (
        f"<p><b>{html.escape(title)}</b></p><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )
