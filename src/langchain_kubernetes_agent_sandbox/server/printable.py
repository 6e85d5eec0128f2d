r"""Sandbox text made safe to show: what a sandbox wrote must not be able to drive the reader's terminal.

A file named "\x1b[2J" or "ok\nFAKE LINE", or a command that prints escape sequences, could otherwise clear a
screen, recolour it, or print lines that look like the server's own. The text rendering of every tool result
goes through one of these two functions; the structured content keeps every character exactly.

- A name (or path) has no business holding any control character: all of them are escaped, C0 (newline and
  tab too), DEL and C1, along with the Unicode line separators and the bidirectional overrides that make a
  name read differently from what it is.
- Output keeps its layout: newlines, tabs and CR LF line ends stay; every other control character (ESC first
  of all, and a lone CR, which would overwrite the line before it) is escaped.

An escape is written `\n`, `\t`, `\r`, `\xNN` or `\uNNNN`.
"""

from __future__ import annotations

import re

_C0_C1 = "\x00-\x1f\x7f-\x9f"
_NAME_UNSAFE = re.compile(f"[{_C0_C1}\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_OUTPUT_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]|\r(?!\n)")
_SHORT = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def printable_name(name: str) -> str:
    """`name` (a file name or path) with every control character escaped, so it shows as one plain line."""
    return _NAME_UNSAFE.sub(_escape, name)


def printable_output(text: str) -> str:
    """`text` (output or file content) with its lines kept and every other control character escaped."""
    return _OUTPUT_UNSAFE.sub(_escape, text)
