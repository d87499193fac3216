"""The end of a log file, and logs kept bounded: one implementation for everyone.

ragexd shows the end of a worker's log when it crashes and answers LOGS with
it, both runtimes rotate worker logs, ragexctl reads logs itself when ragexd is
down and shows the end of ragexd's start log (or a one-shot worker's output)
when those fail.  All of them read a file from its end, never the whole of a
possibly huge file.

A top-level module of the standard library only, so that ``runtimes``,
``supervisor`` and ``ragexctl`` import it without any of them importing the
others.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import BinaryIO, Callable

from .textcodec import printable

#: A log past this size is moved aside (one generation kept) by ``rotate``.
ROTATE_BYTES = 10 * 1024 * 1024
#: ``tail`` reads at most this much from the end of a file.
TAIL_MAX_BYTES = 1024 * 1024


def tail(path: Path, lines: int = 50, *, offset: int = 0, skip_blank: bool = False,
         max_bytes: int = TAIL_MAX_BYTES) -> list[str]:
    """The last ``lines`` lines of a text file (nothing before byte ``offset``);
    [] when it cannot be read.  ``skip_blank`` drops empty lines first."""
    try:
        with open(path, "rb") as fh:
            return tail_of(fh, lines, offset=offset, skip_blank=skip_blank,
                           max_bytes=max_bytes)
    except OSError:
        return []


def tail_of(fh: BinaryIO, lines: int, *, offset: int = 0, skip_blank: bool = False,
            max_bytes: int = TAIL_MAX_BYTES, end: int | None = None) -> list[str]:
    """``tail`` of an open binary file (a temporary file has no path), ending at
    byte ``end`` (default: the file's end now)."""
    if lines <= 0:
        return []
    if end is None:
        fh.seek(0, os.SEEK_END)
        end = fh.tell()
    size = end
    block = 8192
    data = b""
    pos = size
    # Read backwards in growing blocks until there are enough lines.
    while pos > offset and data.count(b"\n") <= lines and size - pos < max_bytes:
        step = min(block, pos - offset)
        pos -= step
        fh.seek(pos)
        data = fh.read(step) + data
        block *= 2
    text = data.decode("utf-8", "replace").splitlines()
    if skip_blank:
        text = [line for line in text if line.strip()]
    return text[-lines:]


def note_line(text: str) -> bytes:
    """A dated line that ragex writes into a log another process fills (a worker's
    log: a worker starts, a container ends, a memory limit kills; ragexd's start
    log: ragexctl starts it), in one form; its text (a project root, an error)
    printable, as a log line is (``logformat``)."""
    return f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {printable(text)}\n".encode()


def note(path: Path, text: str) -> None:
    """Append ``note_line(text)`` to the log at ``path``; a log that cannot be
    written loses the note, never the operation it reports."""
    try:
        with open(path, "ab") as fh:
            fh.write(note_line(text))
    except OSError:
        pass


def rotate(path: Path, max_bytes: int = ROTATE_BYTES) -> None:
    """Move ``path`` aside to ``path.1`` (replacing the previous one) once it
    grows past ``max_bytes``: logs appended to by processes that have no
    logging framework of their own (a worker's stderr, ragexd's start-up
    output) stay bounded."""
    try:
        if path.stat().st_size > max_bytes:
            os.replace(path, path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass


def follow(path: Path, write: Callable[[str], None], poll: float = 0.25, *,
           lines: int = 0) -> None:
    """``tail -n LINES -F``: write the last ``lines`` lines of ``path``, then pass on
    what is appended to it, reopening it after a rotation (and reading the new
    file from its start), until KeyboardInterrupt.  The tail and the following
    share one open file and one end offset: a line written between showing the
    tail and starting to follow was lost when they were two reads."""
    fh: BinaryIO | None = None
    ino = None
    started = False   # after the first open, a file that (re)appears is read from its start
    try:
        while True:
            if fh is None:
                try:
                    fh = open(path, "rb")
                    ino = os.fstat(fh.fileno()).st_ino
                    if not started:
                        end = fh.seek(0, os.SEEK_END)
                        shown = tail_of(fh, lines, end=end)
                        if shown:
                            write("".join(line + "\n" for line in shown))
                        fh.seek(end)
                    started = True
                except OSError:
                    started = True   # no file yet: whatever appears is all new
                    fh = None
                    time.sleep(poll)
                    continue
            data = fh.read()
            if data:
                write(data.decode("utf-8", "replace"))
                continue
            try:
                st = os.stat(path)
                rotated = st.st_ino != ino or st.st_size < fh.tell()
            except OSError:
                rotated = True
            if rotated:
                fh.close()
                fh = None
                try:
                    fh = open(path, "rb")  # the new file: read it from its start
                    ino = os.fstat(fh.fileno()).st_ino
                except OSError:
                    fh = None
                continue
            time.sleep(poll)
    finally:
        if fh is not None:
            fh.close()
