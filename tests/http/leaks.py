"""The leak scan: every form a secret value can take on its way back from a service."""

from __future__ import annotations

import base64
import binascii
import json
import re
from pathlib import Path
from urllib.parse import quote, quote_plus

FRAGMENT = 8  # masked pieces of a split value are at least this long (see README, Limits)


def _lower_escapes(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def _unicode_escaped(value: str, upper: bool) -> str:
    """Every character that is not a letter or digit as `\\uXXXX` (.NET, PHP's JSON_HEX_*)."""
    form = "\\u{:04X}" if upper else "\\u{:04x}"
    return "".join(c if c.isalnum() else form.format(ord(c)) for c in value)


def _base64_cores(data: bytes, urlsafe: bool) -> dict[str, str]:
    """The part of `data`'s base64 that any base64 text holding `data` contains, for each of
    the three byte alignments."""
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    cores = {}
    for offset in range(3):
        text = encode(b"\0" * offset + data).decode()
        start, end = -(-8 * offset // 6), 8 * (offset + len(data)) // 6
        cores[f"base64{'url' if urlsafe else ''}-inside-{offset}"] = text[start:end]
    return cores


def forms(secret: str) -> dict[str, str]:
    """The forms the scan looks for: name -> text."""
    data = secret.encode()
    found = {
        "raw": secret,
        "percent": quote(secret, safe=""),
        "percent-lower": _lower_escapes(quote(secret, safe="")),
        "form": quote_plus(secret),
        "form-lower": _lower_escapes(quote_plus(secret)),
        "json": json.dumps(secret)[1:-1],
        "json-php": json.dumps(secret)[1:-1].replace("/", "\\/"),
        "json-unicode": _unicode_escaped(secret, upper=False),
        "json-unicode-upper": _unicode_escaped(secret, upper=True),
        "base64": base64.b64encode(data).decode(),
        "base64-unpadded": base64.b64encode(data).decode().rstrip("="),
        "base64url": base64.urlsafe_b64encode(data).decode(),
        "base64url-unpadded": base64.urlsafe_b64encode(data).decode().rstrip("="),
        "hex": data.hex(),
        **_base64_cores(data, urlsafe=False),
        **_base64_cores(data, urlsafe=True),
    }
    try:
        decoded = base64.b64decode(secret, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    if ":" in decoded:
        found["basic-user:password"] = decoded
        found["basic-password"] = decoded.split(":", 1)[1]
    half = len(secret) // 2
    found["first-half"], found["second-half"] = secret[:half], secret[half:]
    return {name: text for name, text in found.items() if len(text) >= FRAGMENT}


def leaks(text: str, *secrets: str) -> list[str]:
    """The forms of `secrets` that `text` holds, named."""
    return [
        f"{name}: {form!r}"
        for secret in secrets
        for name, form in forms(secret).items()
        if form in text
    ]


def file_leaks(directory: Path, *secrets: str) -> list[str]:
    """The forms held by any file under `directory` (a journal, its WAL), read as bytes."""
    found = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("latin-1")
        found += [f"{path.name}: {leak}" for leak in leaks(text, *secrets)]
    return found
