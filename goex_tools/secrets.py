"""Symbolic credentials: the agent writes `{{secret:NAME}}`, goex-tools sends the value.

A secret is a value bound to the hosts it may be sent to. The model, the journal and the
logs only ever hold the placeholder; the real value is looked up when a request is sent,
refused for any other host, and registered with the process-wide redactor so that it is
masked wherever it comes back (responses, errors, journal rows, logs).

Sources, first match wins:
- environment: `GOEX_SECRET_<NAME>` holds the value, `GOEX_SECRET_<NAME>_HOSTS` the
  comma-separated hosts (NAME upper-cased, `-` and `.` written as `_`);
- a TOML file (`GOEX_SECRETS_FILE`, default `.goex/secrets.toml`), one table per secret:
  `[github]` / `value = "..."` / `hosts = ["api.github.com"]`; refused if others can read it;
- the OS keyring (`keyring`, service `goex-tools`), when importable and a real backend answers:
  the value under the secret's name, the hosts under `<name>.hosts`;
- an OAuth2 grant signed in with `goex auth login NAME` (`goex_tools.oauth`): the current
  access token, renewed when it expires or a service answers 401.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import stat
import threading
import tomllib
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from goex_tools.errors import ActionRefused, GoexError
from goex_tools.redaction import redact, redactor

__all__ = [
    "DEFAULT_FILE",
    "ENV_PREFIX",
    "FILE_ENV",
    "KEYRING_SERVICE",
    "MIN_LENGTH",
    "PLACEHOLDER",
    "EnvSource",
    "FileSource",
    "KeyringSource",
    "Secret",
    "SecretError",
    "SecretNotAllowed",
    "SecretSource",
    "SecretStore",
    "cut_partial",
    "default_store",
    "map_strings",
    "placeholders",
    "read_owner_only",
    "redact_log_records",
    "register",
]

PLACEHOLDER = re.compile(r"\{\{\s*secret:([A-Za-z0-9_.-]+)\s*\}\}")
ENV_PREFIX = "GOEX_SECRET_"
FILE_ENV = "GOEX_SECRETS_FILE"
DEFAULT_FILE = Path(".goex") / "secrets.toml"
KEYRING_SERVICE = "goex-tools"
MIN_LENGTH = 8  # shorter values would be masked in ordinary text, or not masked at all


class SecretError(GoexError):
    """A secret that is unknown, badly stored, or badly bound."""


class SecretNotAllowed(ActionRefused):
    """A placeholder used for a host its secret is not bound to; nothing was sent."""


@dataclass(frozen=True)
class Secret:
    """A secret's value, the hosts it may be sent to, and the source that gave it; its repr
    never shows the value."""

    name: str
    value: str
    hosts: tuple[str, ...]
    source: str

    def __repr__(self) -> str:  # never show the value, even in a debugger or a traceback
        return f"Secret({self.name!r}, hosts={list(self.hosts)!r}, source={self.source!r})"

    def allows(self, host: str, port: int | None = None) -> bool:
        """True if this secret may be sent to `host` (`host`, `host:port` or `*.domain`)."""
        host = host.lower().rstrip(".")
        for bound in (h.lower().strip() for h in self.hosts):
            if bound.startswith("*."):
                if host.endswith(bound[1:]):
                    return True
            elif bound in (host, f"{host}:{port}"):
                return True
        return False


class SecretSource(Protocol):
    """Where secrets come from. A source whose values expire (an OAuth2 grant) also has
    `renew(name, rejected) -> bool`: get a new value for `name`, the service having refused
    `rejected`."""

    name: str

    def lookup(self, name: str) -> Secret | None: ...


class EnvSource:
    """`GOEX_SECRET_<NAME>` and `GOEX_SECRET_<NAME>_HOSTS`, read at each lookup."""

    name = "environment"

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        self._environ = environ

    def lookup(self, name: str) -> Secret | None:
        environ = self._environ if self._environ is not None else os.environ
        key = ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", name).upper()
        value = environ.get(key)
        if value is None:
            return None
        hosts = [h.strip() for h in environ.get(f"{key}_HOSTS", "").split(",") if h.strip()]
        return Secret(name, value, tuple(hosts), f"environment variable {key}")


class FileSource:
    """A TOML file readable by its owner only."""

    name = "file"

    def __init__(self, path: str | Path | None = None) -> None:
        self._path = Path(path) if path is not None else None

    @property
    def path(self) -> Path:
        return self._path or Path(os.environ.get(FILE_ENV) or DEFAULT_FILE)

    def lookup(self, name: str) -> Secret | None:
        path = self.path
        if not path.exists():
            return None
        try:
            table = tomllib.loads(read_owner_only(path, "secrets"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SecretError(f"{path} is not valid TOML: {exc}") from None
        entry = table.get(name)
        if entry is None:
            return None
        if not isinstance(entry, dict) or not isinstance(entry.get("value"), str):
            raise SecretError(f"[{name}] in {path} needs a string `value` and a list `hosts`")
        hosts = entry.get("hosts", [])
        if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
            raise SecretError(f"`hosts` of [{name}] in {path} must be a list of host names")
        return Secret(name, entry["value"], tuple(hosts), f"file {path}")


class KeyringSource:
    """The OS keyring, when the `keyring` package has a usable backend."""

    name = "keyring"

    def lookup(self, name: str) -> Secret | None:
        backend = _keyring_backend()
        if backend is None:
            return None
        value = backend.get_password(KEYRING_SERVICE, name)
        if value is None:
            return None
        hosts = backend.get_password(KEYRING_SERVICE, f"{name}.hosts") or ""
        found = tuple(h.strip() for h in hosts.split(",") if h.strip())
        return Secret(name, value, found, "OS keyring")


def read_owner_only(path: Path, what: str) -> str:
    """The text of `path`; SecretError if its group or others may read it."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(
            f"refusing to read {what} from {path}: others may read it "
            f"(mode {stat.filemode(mode)}); run `chmod 600 {path}`"
        )
    return path.read_text()


def _keyring_backend() -> Any:
    """The keyring backend, or None if `keyring` is missing or has only its failing one."""
    try:
        keyring = importlib.import_module("keyring")
        failing = importlib.import_module("keyring.backends.fail").Keyring
    except ImportError:
        return None
    backend = keyring.get_keyring()
    if isinstance(backend, failing) or getattr(backend, "priority", 0) <= 0:
        return None
    return backend


class SecretStore:
    """Looks secrets up in its sources and hands out values only for their bound hosts."""

    def __init__(self, sources: Iterable[SecretSource] | None = None) -> None:
        self.sources: list[SecretSource] = (
            list(sources) if sources is not None else _default_sources()
        )

    def get(self, name: str) -> Secret:
        for source in self.sources:
            found = source.lookup(name)
            if found is not None:
                _check(found)
                register(found.value)
                return found
        where = ", ".join(s.name for s in self.sources) or "no sources"
        raise SecretError(f"unknown secret {name!r} (looked in: {where})")

    def value_for(self, name: str, host: str, port: int | None = None) -> str:
        """The value of `name`, if `host` is one it is bound to; SecretNotAllowed otherwise."""
        found = self.get(name)
        if not found.allows(host, port):
            raise SecretNotAllowed(
                f"secret {name!r} is bound to {', '.join(found.hosts)}, "
                f"not to {host}; the request was not sent"
            )
        return found.value

    def renew(self, names: Iterable[str]) -> bool:
        """Ask the sources that can (OAuth2 grants) for new values of `names`, whose current
        ones a service refused (401); True if any was renewed. Raises SecretError when a
        grant can no longer be renewed (revoked)."""
        renewed = False
        for name in names:
            for source in self.sources:
                renew = getattr(source, "renew", None)
                if renew is None:
                    continue
                found = source.lookup(name)
                if found is not None:
                    renewed = bool(renew(name, found.value)) or renewed
                    break
        return renewed

    def check(self, names: Iterable[str], host: str, port: int | None = None) -> None:
        """Refuse early (before anything is journaled) if any secret may not go to `host`."""
        for name in names:
            self.value_for(name, host, port)

    def substitute(
        self, data: Any, host: str, port: int | None = None, *, in_url: bool = False
    ) -> Any:
        """`data` (a string or JSON-like structure) with every placeholder replaced; `in_url`:
        percent-encoded, so that the value arrives as it is (a `+` stays a `+`)."""

        def value(match: re.Match[str]) -> str:
            found = self.value_for(match.group(1), host, port)
            return quote(found, safe="") if in_url else found

        return map_strings(data, lambda text: PLACEHOLDER.sub(value, text))


def placeholders(data: Any) -> set[str]:
    """The secret names that placeholders in `data` refer to."""
    found: set[str] = set()

    def collect(text: str) -> str:
        found.update(PLACEHOLDER.findall(text))
        return text

    map_strings(data, collect)
    return found


def map_strings(data: Any, fn: Callable[[str], str]) -> Any:
    """`data` with `fn` applied to every string in it, keys included."""
    if isinstance(data, str):
        return fn(data)
    if isinstance(data, dict):
        return {map_strings(k, fn): map_strings(v, fn) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [map_strings(item, fn) for item in data]
    return data


def register(value: str) -> None:
    """Mask `value` everywhere, in every form it can take (escaped, encoded, derived, in
    pieces: see `secret_forms`), logs included."""
    forms = redactor.add_secret(value)
    with _forms_lock:
        _forms.update(f for f in forms if len(f) >= MIN_LENGTH)
    redact_log_records()


def cut_partial(text: str) -> str:
    """`text` without a tail that begins a secret value: a body cut at a size limit may end
    inside a secret, where the redactor (which masks whole values) cannot see it."""
    with _forms_lock:
        forms = list(_forms)
    cut = 0
    for form in forms:
        for size in range(min(len(form) - 1, len(text)), cut, -1):
            if text.endswith(form[:size]):
                cut = size
                break
    return text[: len(text) - cut]


_forms: set[str] = set()
_forms_lock = threading.Lock()


def _check(found: Secret) -> None:
    if len(found.value) < MIN_LENGTH:
        raise SecretError(
            f"secret {found.name!r} ({found.source}) is shorter than {MIN_LENGTH} characters; "
            f"so short a value cannot be reliably masked"
        )
    if not found.hosts:
        raise SecretError(
            f"secret {found.name!r} ({found.source}) is bound to no host; say where it may be "
            f"sent (e.g. {ENV_PREFIX}{found.name.upper()}_HOSTS=api.example.com)"
        )


def redact_log_records() -> None:
    """Mask secret values in every log record of the process, whichever logger makes it.

    A filter on a logger does not see its children's records (`httpcore.http11` logs the
    response headers, an echoed token among them), and handlers belong to the application;
    the record factory sees every record as it is made. Installed once, on first use.
    """
    global _log_redaction
    with _log_redaction_lock:
        if _log_redaction:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _redact_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _log_redaction = True


def _redact_record(record: logging.LogRecord) -> None:
    """Rewrite the parts of `record` holding a secret value; leave clean records alone."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: logging later prints message and arguments
        message = f"{record.msg} (arguments: {record.args!r})"
    masked = redact(message)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info and record.exc_info[1] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).removesuffix("\n")
        masked = redact(text)
        if masked != text:  # the formatter uses exc_text as given; the exception goes
            record.exc_info, record.exc_text = None, masked
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


_log_redaction = False
_log_redaction_lock = threading.Lock()
_default_store: SecretStore | None = None


def _default_sources() -> list[SecretSource]:
    from goex_tools.oauth import OAuthSource  # it builds on this module

    return [EnvSource(), FileSource(), KeyringSource(), OAuthSource()]


def default_store() -> SecretStore:
    """The process's store: environment, then the secrets file, then the OS keyring."""
    global _default_store
    if _default_store is None:
        _default_store = SecretStore()
    return _default_store
