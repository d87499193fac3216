"""How a file's bytes become text: the one reading both the index and the client use.

ripgrep decodes a file that starts with a UTF-16 byte-order mark (and reads
UTF-8's), so a regex search finds text in UTF-16 files, as Windows tools and
PowerShell write them.  The index must read them the same way, or the same file
is searchable by regex and "binary" for every other mode; and the client's
``-A/-B/-C`` lines must be those the hit's line number counts.  Stdlib only: the
client imports it.

It is also the one rule for showing such text to people (``printable``): a file's
name or line may hold what a terminal would obey, and every sink people read
(ragexctl's output and messages, ragexd's log) escapes it the same way.
"""

from __future__ import annotations

#: Bytes examined for NUL bytes, the mark of a binary file (as git and ripgrep do).
BINARY_SNIFF = 8192

#: The byte-order marks ripgrep honours, and their codecs (UTF-32 is not among
#: them: such a file is binary to both).
BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


#: What a terminal would obey rather than show: C0 controls but the tab (ESC starts
#: sequences that retitle, clear or recolour the terminal; CR and BS overwrite what
#: was printed), DEL, C1 controls, and the bidirectional overrides that reorder a
#: line as it is displayed ("Trojan Source").  A hostile repository's file names
#: and lines hold them on purpose; --json carries them untouched.
_UNPRINTABLE = {c: _escape(c) for c in (*range(0x00, 0x09), *range(0x0a, 0x20),
                                        *range(0x7f, 0xa0), 0x061c, 0x200e, 0x200f,
                                        *range(0x2028, 0x202f), *range(0x2066, 0x206a))}


def printable(text: str) -> str:
    """``text`` with every character a terminal would obey written as an escape
    (``\\x1b``, ``\\u202e``): what people read shows what the file holds.  The one
    rule for every sink people read: ragexctl's output and messages, ragexd's log."""
    # every log line and hit line passes here, and nearly all are plain text: a
    # string Python calls printable holds none of _UNPRINTABLE's characters (each
    # is a control, format or separator character; tests/client/test_render.py)
    if text.isprintable():
        return text
    return text.translate(_UNPRINTABLE)


#: ``_UNPRINTABLE`` without the line break, for ``printable_lines``.
_UNPRINTABLE_BUT_BREAKS = {c: e for c, e in _UNPRINTABLE.items() if c != ord("\n")}


def printable_lines(text: str) -> str:
    """``printable`` for a message of several lines: its line breaks stay breaks.
    What ``ragexctl`` writes for people (notes, errors) passes here, because a
    message may quote a path or an argument that holds escape sequences."""
    return text.translate(_UNPRINTABLE_BUT_BREAKS)


class NotText(ValueError):
    """Bytes that are not text; the message says why, for the user."""


def codec_of(head: bytes) -> tuple[str, int]:
    """The codec a file's first bytes announce and the length of its mark:
    ``("utf-8", 0)`` without one."""
    for bom, codec in BOMS:
        if head.startswith(bom):
            return codec, len(bom)
    return "utf-8", 0


def _looks_utf16_without_bom(head: bytes) -> bool:
    """Mostly-ASCII UTF-16 without a mark: NULs on one side of nearly every byte pair."""
    sample = head[:1024]
    pairs = len(sample) // 2
    if pairs < 8:
        return False
    for side in (0, 1):
        if sum(1 for b in sample[side::2][:pairs] if b == 0) >= 0.9 * pairs:
            return True
    return False


def decode_text(data: bytes) -> str:
    """The text of a whole file: its byte-order mark decides the codec, invalid
    sequences are replaced rather than refused (a Latin-1 comment should not hide
    the code); NotText when it holds NUL characters."""
    codec, skip = codec_of(data[:4])
    if skip == 0 and b"\0" in data[:BINARY_SNIFF]:
        if _looks_utf16_without_bom(data):
            raise NotText("binary file (UTF-16 text without a byte-order mark? ragex and "
                          "ripgrep read UTF-8, or UTF-16 that starts with its mark)")
        raise NotText("binary file")
    text = data[skip:].decode(codec, errors="replace")
    if "\0" in text[:BINARY_SNIFF]:
        raise NotText("binary file")
    return text


def text_lines(text: str) -> list[str]:
    """``text``'s lines as ripgrep, tree-sitter and editors number them: split at
    ``\\n`` only, a CRLF's ``\\r`` dropped, a final newline ending the last line.

    Not ``str.splitlines``: it also splits at form feeds (common in C and older
    Python), ``\\u2028`` in JavaScript strings, lone ``\\r`` and five more, so every
    line after one of those would be numbered one too far and a chunk's text would
    not be the lines its span names."""
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line_text(ln) for ln in lines]


def line_text(line: str) -> str:
    """One line as ``text_lines`` gives it, from a line read with or without its
    ``\n``: the break and one CR before it dropped, any other CR kept (``a\r\r\n``
    is ``a\r``, as ripgrep prints it)."""
    if line.endswith("\n"):
        line = line[:-1]
    return line[:-1] if line.endswith("\r") else line
