"""The forms a secret value takes on its way back from a service, and a matcher for them.

A service may echo a value escaped or encoded, so masking the value as it was sent is not
enough. For every registered value this module knows:
- character-wise encodings, mixed freely within one value and in either hex case: percent
  escapes (`%2f`, `%2F`, `+` for a space: URLs, form bodies), JSON escapes (`\\/`, `\\u002b`,
  also doubled backslashes of JSON inside JSON), HTML character references (`&#43;`,
  `&#x2b;`, `&amp;`) and bytes reprs (`\\xc3\\xb6`);
- pieces of the value (a token split over two fields): every run of at least FRAGMENT
  characters of it, in any of the encodings above;
- whole-value encodings: base64 and base64url with and without padding, also inside a
  longer base64 text (a whole header line encoded), and hex;
- derived values: a `Basic` credential's decoded `user:password`, and the password alone.

What cannot be caught (README, Limits): pieces shorter than FRAGMENT characters, encodings
applied twice or layered (base64 of a percent-encoded value), hashes, encryption, and any
transformation a service invents.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from bisect import bisect_right
from urllib.parse import quote, quote_plus

FRAGMENT = 8  # the shortest piece of a value that is masked on its own
MIN_PASSWORD = 6  # a decoded Basic password shorter than this is not masked alone
_TOKEN = re.compile(
    r"(?:%[0-9a-fA-F]{2})+"  # a run of percent escapes: one UTF-8 sequence or more
    r"|(?:\\+x[0-9a-fA-F]{2})+"  # bytes-repr escapes, likewise
    r"|\\+u[dD][89abAB][0-9a-fA-F]{2}\\+u[dD][c-fC-F][0-9a-fA-F]{2}"  # a surrogate pair
    r"|\\+u[0-9a-fA-F]{4}|\\+[/\"\\bfnrt]"  # JSON escapes (JSON in JSON: more backslashes)
    r"|&#[0-9]{1,7};|&#[xX][0-9a-fA-F]{1,6};|&(?:amp|lt|gt|quot|apos);"  # HTML references
)
_SHORT = {"/": "/", '"': '"', "\\": "\\", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
_ESCAPES = ("%", "\\", "&")  # text without these holds no escaped character


def _utf8(data: bytes, width: int) -> list[tuple[str, int, int]]:
    """Escaped bytes decoded one character at a time: (character, start, end), where each
    byte took `width` characters of the text."""
    chars, i = [], 0
    while i < len(data):
        lead = data[i]
        size = 1 if lead < 0xC0 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
        try:
            char = data[i : i + size].decode()
        except UnicodeDecodeError:
            char, size = "\ufffd", 1
        chars.append((char, i * width, (i + size) * width))
        i += size
    return chars


def _decode(token: str) -> list[tuple[str, int, int]]:
    """The characters one escape token stands for, each with where it lies in the token."""
    if token[0] == "%":
        return _utf8(bytes.fromhex(token.replace("%", "")), 3)
    if token[0] == "&":
        if token[1] != "#":
            return [(_NAMED[token[1:-1]], 0, len(token))]
        number = int(token[3:-1], 16) if token[2] in "xX" else int(token[2:-1])
        return [(chr(number) if number <= 0x10FFFF else "\ufffd", 0, len(token))]
    body = token.replace("\\", "")
    if not body:
        return [("\\", 0, len(token))]
    if body[0] == "x":
        bytes_ = bytes.fromhex(body.replace("x", ""))
        width = len(token) // len(bytes_)  # the same backslashes before every byte
        return _utf8(bytes_, width)
    if body[0] == "u":
        units = [int(u, 16) for u in body.split("u")[1:]]
        if len(units) == 2:
            return [
                (chr(0x10000 + ((units[0] - 0xD800) << 10) + (units[1] - 0xDC00)), 0, len(token))
            ]
        return [(chr(units[0]), 0, len(token))]
    return [(_SHORT[body], 0, len(token))]


class View:
    """`text` with every escape decoded (`+` read as a space), and a map back to `text`."""

    def __init__(self, text: str) -> None:
        self._at: list[int] = []  # where each piece starts in the view
        self._start: list[int] = []  # ... and where it starts and ends in the text
        self._end: list[int] = []
        self._plain: list[bool] = []  # plain text (else one escaped character)
        parts: list[str] = []
        at = size = 0
        tokens = _TOKEN.finditer(text) if any(e in text for e in _ESCAPES) else iter(())
        for token in tokens:
            if token.start() > at:
                self._piece(size, at, token.start(), True)
                parts.append(text[at : token.start()])
                size += token.start() - at
            for char, start, end in _decode(token.group(0)):
                self._piece(size, token.start() + start, token.start() + end, False)
                parts.append(char)
                size += 1
            at = token.end()
        self._piece(size, at, len(text), True)
        parts.append(text[at:])
        self.decoded = "".join(parts).replace("+", " ")

    def _piece(self, at: int, start: int, end: int, plain: bool) -> None:
        self._at.append(at)
        self._start.append(start)
        self._end.append(end)
        self._plain.append(plain)

    def start(self, pos: int) -> int:
        """Where the view's character `pos` begins in the text."""
        i = bisect_right(self._at, pos) - 1
        return self._start[i] + (pos - self._at[i] if self._plain[i] else 0)

    def end(self, pos: int) -> int:
        """Where the view's character `pos - 1` ends in the text."""
        i = bisect_right(self._at, pos - 1) - 1
        return self._start[i] + (pos - self._at[i]) if self._plain[i] else self._end[i]


def literal_forms(value: str) -> set[str]:
    """Whole-value forms that are not character-wise: base64, base64url, hex, a bytes repr."""
    data = value.encode()
    forms = {
        value,
        json.dumps(value)[1:-1],
        quote(value, safe=""),
        quote_plus(value),
        repr(data)[2:-1],
        data.hex(),
        data.hex().upper(),
    }
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(data).decode()
        forms.update((whole, whole.rstrip("=")))
        for offset in range(3):  # the same bytes inside a longer text, at each alignment
            text = encode(b"\0" * offset + data).decode()
            start, end = -(-8 * offset // 6), 8 * (offset + len(data)) // 6
            forms.add(text[start:end])
    return forms


def derived_values(value: str) -> list[str]:
    """Values a secret stands for besides itself: a Basic credential's `user:password`
    (base64, alone or after `Basic `), and the password alone when it is long enough."""
    credential = value.removeprefix("Basic ").strip()
    try:
        decoded = base64.b64decode(credential, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return []
    if ":" not in decoded or not decoded.isprintable():
        return []
    password = decoded.split(":", 1)[1]
    return [decoded, password] if len(password) >= MIN_PASSWORD else [decoded]


class SecretPattern:
    """Finds a value, or any piece of it of at least FRAGMENT characters, in the decoded
    view of a text (any mix of character-wise escapes)."""

    def __init__(self, value: str) -> None:
        self.raw = value
        self.value = value.replace("+", " ")  # as the view reads it
        self.size = min(FRAGMENT, len(value))
        # every run of `size` characters holds one of these 4-grams whole
        step = max(1, min(4, self.size // 2))
        starts = {*range(0, len(value) - step + 1, step), len(value) - step}
        self.anchors = [(i, self.value[i : i + step]) for i in sorted(starts)]

    def spans(self, view: View) -> list[tuple[int, int]]:
        """Where the view holds the value or pieces of it (view positions, may overlap)."""
        text, value = view.decoded, self.value
        found: list[tuple[int, int]] = []
        for offset, anchor in self.anchors:
            at = text.find(anchor)
            while at != -1:
                left, right = at, at + len(anchor)
                first, last = offset, offset + len(anchor)
                while first > 0 and left > 0 and text[left - 1] == value[first - 1]:
                    left, first = left - 1, first - 1
                while last < len(value) and right < len(text) and text[right] == value[last]:
                    right, last = right + 1, last + 1
                if right - left >= self.size:
                    found.append((left, right))
                at = text.find(anchor, at + 1)
        return found


class Masker:
    """Masks a set of values, in every form above, in strings. Adding builds new tables, so
    a mask running in another thread keeps a consistent set."""

    GRAM = 3  # texts this short or sharing no 3-gram with any form are skipped cheaply
    SHORT = 512  # texts up to this length are pre-checked by their 3-grams

    def __init__(self, min_length: int) -> None:
        self.min_length = min_length
        self._literals: tuple[str, ...] = ()
        self._patterns: tuple[SecretPattern, ...] = ()
        self._grams: frozenset[str] = frozenset()

    def add_literal(self, *forms: str) -> None:
        """Mask these exact strings."""
        kept = [f for f in forms if len(f) >= self.min_length and f not in self._literals]
        self._literals = tuple(sorted({*self._literals, *kept}, key=len, reverse=True))
        self._grams = self._grams | {f[: self.GRAM] for f in kept}

    def add_value(self, value: str) -> set[str]:
        """Mask `value` and the values it stands for in every form; returns the whole-value
        forms (for tails cut at a size limit)."""
        forms: set[str] = set()
        for each in (value, *derived_values(value)):
            if len(each) < self.min_length or any(p.raw == each for p in self._patterns):
                continue
            found = literal_forms(each)
            forms |= found
            self.add_literal(*found)
            pattern = SecretPattern(each)
            grams = {a[: self.GRAM] for _, a in pattern.anchors if len(a) >= self.GRAM}
            if len(grams) < len(pattern.anchors):  # anchors shorter than a 3-gram
                self.SHORT = 0
            self._grams = self._grams | grams | {g.replace(" ", "+") for g in grams}
            self._patterns = (*self._patterns, pattern)
        return {f for f in forms if len(f) >= self.min_length}

    def mask(self, text: str, replacement: str) -> str:
        literals, patterns = self._literals, self._patterns
        if not literals:
            return text
        if len(text) <= self.SHORT and not any(e in text for e in _ESCAPES):
            size = self.GRAM
            if not any(text[i : i + size] in self._grams for i in range(len(text) - size + 1)):
                return text
        for form in literals:
            if form in text:
                text = text.replace(form, replacement)
        if not patterns:
            return text
        view = View(text)
        spans = sorted((view.start(a), view.end(b)) for p in patterns for a, b in p.spans(view))
        if not spans:
            return text
        merged: list[tuple[int, int]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
            else:
                merged.append((start, end))
        return mask_spans(text, merged, replacement)


def mask_spans(text: str, spans: list[tuple[int, int]], mask: str) -> str:
    """`text` with every span replaced by `mask` (spans sorted, not overlapping)."""
    parts, last = [], 0
    for start, end in spans:
        parts += [text[last:start], mask]
        last = end
    parts.append(text[last:])
    return "".join(parts)
