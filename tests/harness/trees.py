"""The projects tests search: small sample trees whose functions the assertions
name, a generated corpus of any size, and copies of stdlib packages (real code
no test wrote for itself).

Each sample tree is a git checkout (a ``.git`` marker), so ragex takes it as
the project root; ``git_checkout`` makes one a real repository where a test needs
commits (snapshots name the commit they reflect).
"""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
import textwrap
import time
from pathlib import Path

STDLIB = Path(sysconfig.get_paths()["stdlib"])

#: git with its own identity and defaults: commits work the same on any machine,
#: whatever the user's configuration (no name set, a signing key, another branch name)
GIT = ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.org", "-c",
       "init.defaultBranch=main", "-c", "commit.gpgsign=false"]


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd``; its stdout, stripped (raises when git fails)."""
    return subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def commit_all(cwd: Path, message: str) -> str:
    """Commit everything in the checkout ``cwd``; the new commit's id."""
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "-m", message)
    return git(cwd, "rev-parse", "HEAD")


def git_checkout(root: Path, message: str = "A") -> str:
    """Make the sample tree at ``root`` a real git repository (its ``.git`` is only a
    marker) with everything committed; the commit's id."""
    marker = root / ".git"
    if marker.is_dir() and not any(marker.iterdir()):
        marker.rmdir()
    git(root, "init", "-q")
    return commit_all(root, message)


def write_tree(root: Path, files: int = 4) -> Path:
    """The protocol suites' project (supervisor, Docker, faults): distinctive
    functions to search for, plus ``files - 3`` small helper modules."""
    root.mkdir(parents=True, exist_ok=True)
    (root / ".git").mkdir(exist_ok=True)
    (root / "billing.py").write_text(textwrap.dedent('''
        def compute_invoice_total(items, tax_rate):
            """Sum the line items of an invoice and add sales tax."""
            subtotal = sum(item.price * item.quantity for item in items)
            return round(subtotal * (1 + tax_rate), 2)


        class RefundPolicy:
            def refund_window_days(self, customer):
                return 60 if customer.is_premium else 30
    '''))
    (root / "network.py").write_text(textwrap.dedent('''
        import socket


        def open_tcp_connection(host, port, timeout=5.0):
            """Connect to a TCP server and return the socket."""
            sock = socket.create_connection((host, port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock


        def retry_with_backoff(fn, attempts=5):
            delay = 0.1
            for attempt in range(attempts):
                try:
                    return fn()
                except OSError:
                    delay *= 2
            raise RuntimeError("gave up")
    '''))
    (root / "text_utils.py").write_text(textwrap.dedent('''
        import re


        def slugify(title):
            """Turn a title into a lowercase URL slug."""
            return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


        def count_words(text):
            return len(text.split())
    '''))
    for i in range(max(0, files - 3)):
        (root / f"module_{i}.py").write_text(textwrap.dedent(f'''
            def helper_function_{i}(value):
                """Helper number {i}: scale a value."""
                return value * {i + 2}
        '''))
    return root


def make_tree(root: Path) -> Path:
    """The client suite's project: a ``shop`` package and a shell script, whose
    lines the output tests name."""
    (root / ".git").mkdir(parents=True)
    pkg = root / "shop"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "upload.py").write_text(
        "import time\n\n\n"
        "def retry_upload(client, path, attempts=5):\n"
        "    \"\"\"Upload a file, retrying failed uploads with exponential backoff.\"\"\"\n"
        "    delay = 1.0\n"
        "    for _ in range(attempts):\n"
        "        if client.put(path):\n"
        "            return True\n"
        "        time.sleep(delay)\n"
        "        delay *= 2\n"
        "    return False\n")
    (pkg / "config.py").write_text(
        "import json\n\n\n"
        "class ConfigError(Exception):\n"
        "    \"\"\"Raised when the configuration file is invalid.\"\"\"\n\n\n"
        "def parse_config(text):\n"
        "    \"\"\"Parse the JSON configuration and check required keys.\"\"\"\n"
        "    data = json.loads(text)\n"
        "    if 'name' not in data:\n"
        "        raise ConfigError('missing name')\n"
        "    return data\n")
    (pkg / "cart.py").write_text(
        "class Cart:\n"
        "    \"\"\"A shopping cart holding items and their quantities.\"\"\"\n\n"
        "    def __init__(self):\n"
        "        self.items = {}\n\n"
        "    def add_item(self, sku, qty=1):\n"
        "        \"\"\"Add qty units of sku to the cart.\"\"\"\n"
        "        self.items[sku] = self.items.get(sku, 0) + qty\n\n"
        "    def total_price(self, prices):\n"
        "        \"\"\"Sum the price of every item in the cart.\"\"\"\n"
        "        return sum(prices[s] * q for s, q in self.items.items())\n")
    (root / "tools.sh").write_text("#!/bin/sh\n# run the linter\nexec rg --pre=sh \"$@\"\n")
    return root


def write(path: Path, text: str) -> float:
    """Write like an editor's save; returns the monotonic time the file was closed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(textwrap.dedent(text).lstrip("\n"))
    return time.monotonic()


def make_project(root: Path) -> Path:
    """The freshness and MCP suites' project: subfolders and a ``.gitignore`` for
    the watcher to honour, distinctive functions to search for."""
    (root / ".git").mkdir(parents=True)
    write(root / ".gitignore", "generated/\n")
    write(root / "billing.py", '''
        def compute_invoice_total(items, tax_rate):
            """Sum the line items of an invoice and add sales tax."""
            subtotal = sum(item.price * item.quantity for item in items)
            return round(subtotal * (1 + tax_rate), 2)
        ''')
    write(root / "net" / "retry.py", '''
        import time


        def retry_with_backoff(fn, attempts=5):
            """Call fn, retrying failures with exponential backoff between attempts."""
            delay = 0.5
            for _ in range(attempts):
                try:
                    return fn()
                except OSError:
                    time.sleep(delay)
                    delay *= 2
            raise RuntimeError("gave up")
        ''')
    write(root / "text" / "slug.py", '''
        import re


        def slugify_title(title):
            """Turn an article title into a lowercase URL slug with dashes."""
            return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        ''')
    write(root / "shapes.py", '''
        import math


        class Circle:
            """A circle given by its radius."""

            def __init__(self, radius):
                self.radius = radius

            def area(self):
                """Area of the circle: pi times the radius squared."""
                return math.pi * self.radius ** 2
        ''')
    return root


# --- a generated corpus --------------------------------------------------

_VERBS = ("compute", "render", "parse", "validate", "merge", "encode", "schedule", "resolve",
          "normalise", "compress", "estimate", "persist")
_NOUNS = ("invoice", "thumbnail", "manifest", "password", "timetable", "checksum", "route",
          "inventory", "coupon", "forecast", "playlist", "certificate")


def write_corpus(root: Path, files: int, funcs: int, prefix: str = "mod") -> Path:
    """``files`` Python modules of ``funcs`` distinct functions each: one chunk per
    function, enough chunks that indexing takes seconds, every name unique."""
    root.mkdir(parents=True, exist_ok=True)
    (root / ".git").mkdir(exist_ok=True)
    for i in range(files):
        parts = [f'"""Module {i} of a generated corpus."""\n']
        for j in range(funcs):
            verb, noun = _VERBS[(i + j) % len(_VERBS)], _NOUNS[(i * 7 + j) % len(_NOUNS)]
            parts.append(
                f"\n\ndef {verb}_{noun}_{i}_{j}(value, factor={j + 1}):\n"
                f'    """{verb.capitalize()} the {noun} record {i}.{j} and return the result."""\n'
                f"    total = value * factor + {i}\n"
                f"    for step in range({j % 5 + 2}):\n"
                f"        total = (total * {31 + j} + step) % {1000 + i}\n"
                f"    return total\n")
        (root / f"{prefix}_{i:03d}.py").write_text("".join(parts))
    return root


def copy_stdlib(dest: Path, *packages: str) -> Path:
    """Copy stdlib packages (or single modules) into ``dest``; returns ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in packages:
        src = STDLIB / name
        if src.is_dir():
            shutil.copytree(src, dest / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "tests", "test"))
        else:
            shutil.copy2(src, dest / src.name)
    return dest
