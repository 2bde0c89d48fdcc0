"""Which database a step touched, stored without its password, and how to reach it again.

The journal keeps a `DatabaseRef`: an optional name and the URL with its password hidden.
A rollback (perhaps in another process, much later) gets the real URL, in this order:
  1. `register_database(name, url)` called in that process;
  2. the environment variable `GOEX_SQL_URL_<NAME>` (name upper-cased, `-` and `.` as `_`);
  3. the stored URL itself, when it never had a password (SQLite files, trust or peer auth),
     or when its password is a `{{secret:NAME}}` placeholder: the URL is journaled with the
     placeholder, and the secret store (`goex_tools.secrets`) gives the value, for the
     URL's host only, whenever a connection is made.
"""

from __future__ import annotations

import os
import re

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import URL, Engine

from goex_tools.domains.sql.errors import SqlError
from goex_tools.errors import GoexError
from goex_tools.secrets import default_store, placeholders

ENV_PREFIX = "GOEX_SQL_URL_"
DIALECTS = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}

_registered: dict[str, str] = {}


class DatabaseRef(BaseModel):
    """A database as the journal names it: never with a password."""

    name: str | None = None
    url: str  # password hidden ("***")

    @property
    def dialect(self) -> str:
        return dialect_of(sa.engine.make_url(self.url))


def register_database(name: str, url: str | URL) -> DatabaseRef:
    """Make `name` resolve to `url` in this process (for run_sql and for rollbacks)."""
    real = url if isinstance(url, str) else url.render_as_string(hide_password=False)
    _registered[name] = real
    return ref_for(real, name)


def ref_for(url: str | URL, name: str | None = None) -> DatabaseRef:
    parsed = sa.engine.make_url(url)
    dialect_of(parsed)  # unsupported dialects fail here, before anything runs
    if isinstance(url, str) and placeholders(url):
        return DatabaseRef(name=name, url=url)  # a placeholder is no secret: keep it
    return DatabaseRef(name=name, url=parsed.render_as_string(hide_password=True))


def resolve(ref: DatabaseRef) -> str:
    """The real URL of a journaled database reference (see the module docstring)."""
    if ref.name is not None:
        if ref.name in _registered:
            return with_secrets(_registered[ref.name])
        from_env = os.environ.get(env_var(ref.name))
        if from_env:
            return with_secrets(from_env)
    if placeholders(ref.url) or sa.engine.make_url(ref.url).password is None:
        return with_secrets(ref.url)
    registered = _registered_as(ref.url)
    if registered is not None:  # journaled without a name, registered since
        return with_secrets(registered)
    where = (
        f"register_database({ref.name!r}, url) or set {env_var(ref.name)}"
        if ref.name
        else (
            "run the statement with a named database (register_database(name, url)) so that "
            "a rollback can find its credentials"
        )
    )
    raise SqlError(f"no credentials for database {ref.url}: {where}")


def lookup(database: str | URL | Engine) -> tuple[str, DatabaseRef]:
    """The real URL and the journal reference for what a caller passed to run_sql.

    `database` is a registered name, a URL (its password may be a `{{secret:NAME}}`
    placeholder), or an SQLAlchemy Engine.
    """
    if isinstance(database, Engine):
        given = database.url.render_as_string(hide_password=False)
        ref = ref_for(given, _name_of(given))
    elif isinstance(database, str) and database in _registered:
        given, ref = _registered[database], ref_for(_registered[database], database)
    elif isinstance(database, str) and "://" not in database:
        from_env = os.environ.get(env_var(database))
        if from_env is None:
            raise SqlError(
                f"unknown database {database!r}: register_database({database!r}, url) "
                f"or set {env_var(database)}"
            )
        given, ref = from_env, ref_for(from_env, database)
    else:
        given = database if isinstance(database, str) else database.render_as_string(False)
        ref = ref_for(given, _name_of(given))
    return with_secrets(given), ref


def with_secrets(url: str) -> str:
    """`url` with `{{secret:NAME}}` placeholders replaced, for the URL's own host only."""
    if not placeholders(url):
        return url
    parsed = sa.engine.make_url(url)
    return str(default_store().substitute(url, parsed.host or "localhost", parsed.port))


def env_var(name: str) -> str:
    return ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def dialect_of(url: URL) -> str:
    dialect = DIALECTS.get(url.get_backend_name())
    if dialect is None:
        raise SqlError(
            f"run_sql supports SQLite, PostgreSQL and MySQL/MariaDB, not {url.get_backend_name()!r}"
        )
    return dialect


def sqlite_path(url: str) -> str:
    """The file of an SQLite URL; in-memory databases cannot be rolled back later."""
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:":
        raise SqlError("run_sql needs an SQLite file: an in-memory database dies with its process")
    return database


def require_credentials(ref: DatabaseRef) -> None:
    """Raises SqlError, before a write runs, when its undo could never reach the database:
    a URL with a password, named nowhere (the journal keeps no password)."""
    try:
        resolve(ref)
    except GoexError as exc:
        raise SqlError(f"refused before it ran (its undo would need the password): {exc}") from None


def _registered_as(hidden: str) -> str | None:
    """The registered URL that the journal shows as `hidden` (password masked)."""
    for url in _registered.values():
        if sa.engine.make_url(url).render_as_string(hide_password=True) == hidden:
            return url
    return None


def _name_of(real: str) -> str | None:
    """The registered name of a URL, so that its rollback can find the credentials again."""
    return next((name for name, url in _registered.items() if url == real), None)
