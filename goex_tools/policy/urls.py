"""A request's host and path in the form the server acts on, for HTTP rules to match.

- Path: escapes of unreserved characters are decoded (`%2e` is `.`, `%65` is `e`), then `.`
  and `..` segments are resolved and repeated slashes merged, as nginx, Apache and most
  frameworks do before routing; what is left is decoded for matching. So `/x/%2e%2e/admin`,
  `//admin` and `/v1/items/%2e%2e/%2e%2e/admin` are all `/admin`. A path servers read in
  different ways is refused instead (`AmbiguousPath`): an encoded `/`, `\\` or `%`, a control
  character, a backslash, a dot segment with `;` parameters, `..` above the root.
- Host: an IP address in any spelling (`2130706433`, `0x7f.1`, `127.1`, `[::ffff:127.0.0.1]`)
  becomes its usual form (`127.0.0.1`), as the resolver reads it; a final dot is dropped.
  `addresses(host)` resolves a name, for rules naming an address (`localhost`).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import string
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import unquote

from goex_tools.errors import ActionRefused

UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
RESOLVE_TIMEOUT = 3.0  # seconds
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_IPV4_SPELLING = re.compile(r"^[0-9a-fA-Fx.]+$")
_resolver = ThreadPoolExecutor(max_workers=2, thread_name_prefix="goex-resolve")


class AmbiguousPath(ActionRefused):
    """A request path that servers read in different ways."""


def normal_path(raw: str) -> str:
    """The path a server routes `raw` (as sent, escapes and all, no query) to."""
    if "\\" in raw:
        raise AmbiguousPath(f"{raw!r} holds a backslash, which some servers read as /")
    decoded = _ESCAPE.sub(_unreserved, raw)
    if "%" in _ESCAPE.sub("", decoded):
        raise AmbiguousPath(f"{raw!r} holds a % that starts no escape")
    for escape in _ESCAPE.findall(decoded):
        char = chr(int(escape, 16))
        if char in "/\\%" or ord(char) < 0x20 or ord(char) == 0x7F:
            raise AmbiguousPath(
                f"{raw!r} holds an encoded {char!r}, which servers decode or not, once or twice"
            )
    kept: list[str] = []
    segments = decoded.split("/")
    for segment in segments:
        name = segment.partition(";")[0]
        if name in (".", "..") and name != segment:
            raise AmbiguousPath(f"{raw!r} has a dot segment with parameters ({segment!r})")
        if segment in ("", "."):
            continue
        if segment == "..":
            if not kept:
                raise AmbiguousPath(f"{raw!r} goes above the root, which servers treat apart")
            kept.pop()
            continue
        kept.append(segment)
    trailing = segments[-1] in ("", ".", "..") and bool(kept)
    path = "/" + "/".join(kept) + ("/" if trailing else "")
    try:
        return unquote(path, errors="strict")
    except UnicodeDecodeError:
        raise AmbiguousPath(f"{raw!r} holds escapes that are not UTF-8") from None


def _unreserved(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in UNRESERVED else match.group(0).upper()


def canonical_host(host: str) -> str:
    """`host` lowercased without its final dot; an IP address in its usual form."""
    host = host.lower().rstrip(".").strip("[]")
    address = ip_address(host)
    return str(address) if address is not None else host


def ip_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address `host` spells, in any form the resolver accepts, or None for a name."""
    if _IPV4_SPELLING.match(host) and not host.endswith("."):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    try:
        v6 = ipaddress.IPv6Address(host)
    except ValueError:
        return None
    return v6.ipv4_mapped or v6


def addresses(host: str) -> frozenset[str] | None:
    """Every address a name resolves to here, in usual form; None if it cannot be told
    (an error or a slow resolver): a rule that refuses an address then applies."""
    literal = ip_address(host)
    if literal is not None:
        return frozenset({str(literal)})
    try:
        found = _resolver.submit(socket.getaddrinfo, host, None).result(RESOLVE_TIMEOUT)
    except (OSError, UnicodeError, FutureTimeout):
        return None
    return frozenset(canonical_host(str(info[4][0])) for info in found)
