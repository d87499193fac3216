#!/usr/bin/env python3
"""Third-party eval corpora (docstring/JSDoc/doc comment -> code), fetched and built here.

A ranking tuned on one code style does not carry over, so the quality eval uses
many packages from the registries, in three languages, each pinned:

* Python wheels from PyPI (``pip download --no-deps``);
* JavaScript packages from npm (``npm pack``);
* Go sources from Debian's ``golang-*-dev`` packages (``apt-get download``).

For each corpus the source is copied to ``OUT/<name>/tree/<pkg>``, every doc
comment is blanked *in place* (line numbers kept: its lines become empty) and the
first sentence of each documented function whose body spans >= 3 lines and whose
sentence has >= 5 words becomes a query whose answer is that function.  Queries
whose text occurs twice are dropped (ambiguous).  The Python method is the one of
the CodeSearchNet-style eval it replaces (docstrings blanked, ``pass`` written
where a docstring was a body's only statement); the JavaScript and Go generators
blank ``/** ... */`` JSDoc blocks and Go doc comments (the ``//`` lines right
above a declaration) and, for Go, drop the leading function name that Go's
convention puts first ("AddCommand adds ..." asks "adds ...": a person does not
type the name they are looking for).

``queries.jsonl`` lines: ``{"id", "query", "file", "name", "start", "end",
"deco_start"}`` with ``start`` the definition's own line, ``deco_start`` the
first line of what wraps it (decorators, ``export``, ``x.y = ``), ``end`` its last.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import shutil
import subprocess
import sys
import tarfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

MIN_WORDS = 5
MIN_BODY_LINES = 3
ABBREV = {"e.g", "i.e", "etc", "vs", "cf", "approx", "resp", "incl", "ca"}


@dataclass(frozen=True)
class Corpus:
    """One pinned package: where it comes from and which folder of it is the tree."""

    name: str
    language: str        # python | javascript | go
    registry: str        # pypi | npm | deb
    pin: str             # click==8.1.7 | commander@12.1.0 | golang-...-dev=1.6.1-1
    subdir: str          # folder inside the unpacked package that becomes the tree


CORPORA: dict[str, Corpus] = {c.name: c for c in (
    Corpus("click", "python", "pypi", "click==8.1.7", "click"),
    Corpus("jinja2", "python", "pypi", "Jinja2==3.1.4", "jinja2"),
    Corpus("sortedcontainers", "python", "pypi", "sortedcontainers==2.4.0", "sortedcontainers"),
    Corpus("requests", "python", "pypi", "requests==2.32.3", "requests"),
    Corpus("attrs", "python", "pypi", "attrs==23.2.0", "attr"),
    Corpus("commander", "javascript", "npm", "commander@12.1.0", "package/lib"),
    Corpus("express", "javascript", "npm", "express@4.19.2", "package/lib"),
    Corpus("axios", "javascript", "npm", "axios@1.7.2", "package/lib"),
    Corpus("ws", "javascript", "npm", "ws@8.17.0", "package/lib"),
    Corpus("cobra", "go", "deb", "golang-github-spf13-cobra-dev=1.6.1-1",
           "usr/share/gocode/src/github.com/spf13/cobra"),
    Corpus("pflag", "go", "deb", "golang-github-spf13-pflag-dev=1.0.6~git20210604-d5e0c0615ace-1",
           "usr/share/gocode/src/github.com/spf13/pflag"),
    Corpus("logrus", "go", "deb", "golang-github-sirupsen-logrus-dev=1.9.0-1",
           "usr/share/gocode/src/github.com/sirupsen/logrus"),
    Corpus("uuid", "go", "deb", "golang-github-google-uuid-dev=1.3.0-1",
           "usr/share/gocode/src/github.com/google/uuid"),
)}
#: The corpora measured by default: the nine smallest (embedding them all costs
#: ~3,500 encodes); the rest are there for anyone with the CPU to spare.
DEFAULT = "sortedcontainers,requests,attrs,commander,express,ws,axios,logrus,uuid"


# --- fetching -----------------------------------------------------------------------


def fetch(corpus: Corpus, cache: Path) -> Path:
    """The unpacked package (downloaded once into ``cache``)."""
    dest = cache / "src" / corpus.name
    if (dest / ".done").exists():
        return dest / corpus.subdir
    shutil.rmtree(dest, ignore_errors=True)
    dl = cache / "dl" / corpus.name
    shutil.rmtree(dl, ignore_errors=True)
    dl.mkdir(parents=True)
    dest.mkdir(parents=True)
    if corpus.registry == "pypi":
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary",
                        ":all:", "-q", "-d", str(dl), corpus.pin], check=True)
        with zipfile.ZipFile(next(dl.glob("*.whl"))) as whl:
            whl.extractall(dest)
    elif corpus.registry == "npm":
        subprocess.run(["npm", "pack", "--silent", corpus.pin], cwd=dl, check=True,
                       stdout=subprocess.DEVNULL)
        with tarfile.open(next(dl.glob("*.tgz"))) as tgz:
            tgz.extractall(dest, filter="data")
    elif corpus.registry == "deb":
        subprocess.run(["apt-get", "download", "-q", corpus.pin], cwd=dl, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["dpkg-deb", "-x", str(next(dl.glob("*.deb"))), str(dest)], check=True)
    else:
        raise ValueError(corpus.registry)
    (dest / ".done").write_text(corpus.pin + "\n")
    return dest / corpus.subdir


def build(corpus: Corpus, out: Path, cache: Path) -> tuple[Path, list[dict]]:
    """(blanked tree, queries) for one corpus, built once and reused."""
    qfile = out / corpus.name / "queries.jsonl"
    tree_root = out / corpus.name / "tree"
    if not qfile.exists():
        src = fetch(corpus, cache)
        shutil.rmtree(tree_root, ignore_errors=True)
        dest = tree_root / corpus.name
        shutil.copytree(src, dest, ignore=shutil.ignore_patterns(
            "__pycache__", "*.pyc", "*.map", "*.d.ts", ".done"))
        queries: list[dict] = []
        make = {"python": _python_file, "javascript": _js_file, "go": _go_file}[corpus.language]
        ext = {"python": ".py", "javascript": ".js", "go": ".go"}[corpus.language]
        for path in sorted(dest.rglob("*" + ext)):
            rel = path.relative_to(tree_root).as_posix()
            orig = path.read_text(encoding="utf-8")
            new, found = make(rel, orig)
            if orig.count("\n") != new.count("\n"):
                raise AssertionError(f"{rel}: blanking changed the line count")
            path.write_text(new, encoding="utf-8")
            queries.extend(found)
        counts: dict[str, int] = {}
        for q in queries:
            counts[q["query"].lower()] = counts.get(q["query"].lower(), 0) + 1
        kept = [q for q in queries if counts[q["query"].lower()] == 1]
        seen: set[str] = set()
        with open(qfile, "w", encoding="utf-8") as fh:
            for q in kept:
                if q["id"] in seen:
                    continue
                seen.add(q["id"])
                fh.write(json.dumps(q) + "\n")
    queries = [json.loads(ln) for ln in qfile.read_text().splitlines() if ln.strip()]
    return tree_root, queries


# --- query text ---------------------------------------------------------------------


def strip_markup(text: str) -> str:
    """Remove reST / markdown / JSDoc inline markup, keep the visible words."""
    def role(m: re.Match) -> str:
        body = m.group(1)
        t = re.match(r"^(.*?)\s*<[^>]*>$", body, re.S)
        if t:
            return t.group(1)
        if body.startswith("~"):
            return body[1:].split(".")[-1]
        return body.lstrip("!")

    text = re.sub(r":[\w.+-]+(?::[\w.+-]+)*:`([^`]+)`", role, text)
    text = re.sub(r"(?<![\w`])`([^`<]+?)\s*<[^>]+>`__?(?!\w)", r"\1", text)
    text = re.sub(r"(?<![\w`])`([^`]+)`__?(?!\w)", r"\1", text)
    text = re.sub(r"``(.+?)``", r"\1", text)
    text = re.sub(r"`([^`]+)`", r"\1", text)
    text = re.sub(r"\{@\w+\s+([^}|]*?)(?:\|[^}]*)?\}", r"\1", text)      # {@link Foo}
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"(?<![\w*])\*\*([^*\s](?:[^*]*[^*\s])?)\*\*(?![\w*])", r"\1", text)
    text = re.sub(r"(?<![\w*])\*([^*\s](?:[^*]*[^*\s])?)\*(?![\w*])", r"\1", text)
    text = re.sub(r"(?<!\w)__([^_\s](?:[^_]*[^_\s])?)__(?!\w)", r"\1", text)
    text = re.sub(r"\|([^|\s][^|]*)\|", r"\1", text)
    text = re.sub(r"<[a-zA-Z/][^>]*>", "", text)                           # <code>, </p>
    text = re.sub(r"::$", ":", text)
    return " ".join(text.split())


def first_sentence(doc: str) -> str | None:
    """First sentence of the first paragraph, markup stripped, or None."""
    doc = inspect.cleandoc(doc).strip()
    if not doc:
        return None
    para = re.split(r"\n\s*\n", doc, maxsplit=1)[0]
    para = re.split(r"(?m)^\s*@", para, maxsplit=1)[0]      # JSDoc tags end the summary
    if not para.strip() or para.lstrip().startswith((".. ", ":param", ":return", ">>>")):
        return None
    text = " ".join(para.split())
    for m in re.finditer(r"[.!?](?=\s|$)", text):
        before = text[: m.start()]
        last = before.split(" ")[-1].lower() if before else ""
        if last in ABBREV or re.fullmatch(r"[a-z]", last):
            continue
        text = text[: m.end()]
        break
    return strip_markup(text) or None


def _query(rel: str, qual: str, doc: str, start: int, end: int, deco: int,
           body_lines: int, drop_name: str = "") -> dict | None:
    if body_lines < MIN_BODY_LINES:
        return None
    q = first_sentence(doc)
    if q and drop_name:
        words = q.split(" ")
        if words[0].strip(",:") == drop_name or words[0].lower() == "the" and \
                len(words) > 1 and words[1] == drop_name:
            q = " ".join(words[2 if words[0].lower() == "the" else 1:])
    if not q or len(q.split()) < MIN_WORDS:
        return None
    return {"id": f"{rel}::{qual}", "query": q, "file": rel, "name": qual,
            "start": start, "end": end, "deco_start": deco}


def _blank(data: bytearray, start: int, end: int) -> None:
    """Blank bytes [start, end) keeping newlines; lines left empty become empty."""
    for i in range(start, end):
        if data[i] not in (0x0A, 0x0D):
            data[i] = 0x20


def _strip_blank_lines(text: str) -> str:
    return "\n".join(ln if ln.strip() else "" for ln in text.split("\n"))


# --- Python -------------------------------------------------------------------------


def _py_docstring(body: list) -> ast.Expr | None:
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[0]
    return None


def _py_functions(tree: ast.AST) -> list[tuple[str, ast.AST]]:
    out: list[tuple[str, ast.AST]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((prefix + child.name, child))
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)
    visit(tree, "")
    return out


def _python_file(rel: str, source: str) -> tuple[str, list[dict]]:
    tree = ast.parse(source)
    owners = [tree] + [n for n in ast.walk(tree)
                       if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
    docs = []
    for n in owners:
        d = _py_docstring(n.body)
        if d is not None:
            docs.append((d, len(n.body) == 1 and not isinstance(n, ast.Module)))
    lines = re.split(r"(?<=\n)", source)
    if lines and lines[-1] == "":
        lines.pop()
    # line/col from ast are in UTF-8 bytes: work on byte lines
    blines = [ln.encode("utf-8") for ln in lines]
    for node, only in sorted(docs, key=lambda x: (x[0].lineno, x[0].col_offset), reverse=True):
        l1, c1, l2, c2 = node.lineno, node.col_offset, node.end_lineno, node.end_col_offset
        first, last = blines[l1 - 1], blines[l2 - 1]
        prefix, suffix = first[:c1], last[c2:]
        nl = b"\r\n" if first.endswith(b"\r\n") else b"\n"
        tail = suffix.rstrip(b"\r\n")
        code_after = bool(tail.strip()) and not tail.strip().startswith(b"#")
        repl = b"pass" if (only or prefix.strip() or code_after) else b""
        if l1 == l2:
            new = prefix + repl + suffix
            blines[l1 - 1] = new if new.strip() else nl
        else:
            head = (prefix + repl).rstrip()
            blines[l1 - 1] = (head + nl) if head.strip() else nl
            for i in range(l1, l2 - 1):
                blines[i] = nl
            if code_after:
                indent = re.match(rb"[ \t]*", prefix).group(0)  # type: ignore[union-attr]
                blines[l2 - 1] = indent + b"pass" + suffix
            else:
                blines[l2 - 1] = (tail.strip() + nl) if tail.strip() else nl
    new = b"".join(blines).decode("utf-8")
    ast.parse(new)  # still valid Python
    found = []
    for qual, node in _py_functions(tree):
        d = _py_docstring(node.body)  # type: ignore[attr-defined]
        if d is None or len(node.body) < 2:  # type: ignore[attr-defined]
            continue
        body_lines = node.end_lineno - node.body[1].lineno + 1  # type: ignore[attr-defined]
        deco = min([x.lineno for x in node.decorator_list] + [node.lineno])  # type: ignore
        q = _query(rel, qual, d.value.value, node.lineno, node.end_lineno,  # type: ignore
                   deco, body_lines)
        if q:
            found.append(q)
    return new, found


# --- tree-sitter languages ----------------------------------------------------------


def _parse(language: str, src: bytes):  # noqa: ANN202 - a tree-sitter Tree
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from tree_sitter_languages import get_parser
        return get_parser(language).parse(src)


def _clean_comment(text: str) -> str:
    out = []
    for line in text.splitlines():
        line = line.strip()
        line = re.sub(r"^(/\*\*?|\*/|\*|//)", "", line)
        out.append(re.sub(r"\*/$", "", line).strip())
    return "\n".join(out).strip()


def _node_text(src: bytes, node) -> str:  # noqa: ANN001
    return src[node.start_byte:node.end_byte].decode("utf-8", "replace")


def _leading_comments(node, gap: int = 0) -> list:  # noqa: ANN001
    """Comment nodes directly above ``node`` (at most ``gap`` blank lines between)."""
    out = []
    cur, prev = node, node.prev_named_sibling
    while prev is not None and prev.type == "comment" \
            and prev.end_point[0] >= cur.start_point[0] - 1 - gap:
        out.append(prev)
        cur, prev = prev, prev.prev_named_sibling
    return list(reversed(out))


def _walk(node):  # noqa: ANN001, ANN202
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.named_children))


_JS_FUNC_VALUES = {"function", "function_expression", "arrow_function", "generator_function"}


def _js_functions(src: bytes, root):  # noqa: ANN001, ANN202
    """(name, function node, statement that owns it) for every named JS function."""
    for n in _walk(root):
        if n.type in ("function_declaration", "generator_function_declaration",
                      "method_definition"):
            name = n.child_by_field_name("name")
            owner = n
            while owner.parent is not None and owner.parent.type == "export_statement":
                owner = owner.parent
            if name is not None:
                yield _node_text(src, name), n, owner
        elif n.type in _JS_FUNC_VALUES and n.parent is not None:
            p = n.parent
            if p.type == "variable_declarator" and p.child_by_field_name("value") == n:
                decl = p.parent
                owner = decl
                while owner.parent is not None and owner.parent.type == "export_statement":
                    owner = owner.parent
                yield _node_text(src, p.child_by_field_name("name")), n, owner
            elif p.type == "assignment_expression" and p.parent is not None \
                    and p.parent.type == "expression_statement":
                left = _node_text(src, p.child_by_field_name("left"))
                yield left.split(".")[-1], n, p.parent
            elif p.type == "pair":
                key = p.child_by_field_name("key")
                yield _node_text(src, key).strip("'\""), n, p


def _js_file(rel: str, source: str) -> tuple[str, list[dict]]:
    src = source.encode("utf-8")
    root = _parse("javascript", src).root_node
    found = []
    for name, fn, owner in _js_functions(src, root):
        docs = [c for c in _leading_comments(owner, gap=1) if _node_text(src, c).startswith("/**")]
        if not docs:
            continue
        body = fn.child_by_field_name("body")
        if body is None:
            continue
        body_lines = body.end_point[0] - body.start_point[0] + 1
        q = _query(rel, f"{name}@{fn.start_point[0] + 1}", _clean_comment(_node_text(src, docs[-1])),
                   fn.start_point[0] + 1, owner.end_point[0] + 1, owner.start_point[0] + 1,
                   body_lines)
        if q:
            found.append(q)
    data = bytearray(src)
    for n in _walk(root):
        if n.type == "comment" and _node_text(src, n).startswith("/**"):
            _blank(data, n.start_byte, n.end_byte)
    return _strip_blank_lines(data.decode("utf-8")), found


_GO_DECLS = ("function_declaration", "method_declaration", "type_declaration",
             "const_declaration", "var_declaration", "package_clause")


def _go_file(rel: str, source: str) -> tuple[str, list[dict]]:
    src = source.encode("utf-8")
    root = _parse("go", src).root_node
    found = []
    test_file = rel.endswith("_test.go")
    data = bytearray(src)
    for n in root.named_children:
        if n.type not in _GO_DECLS:
            continue
        docs = _leading_comments(n)
        if docs and n.type in ("function_declaration", "method_declaration") and not test_file:
            name = _node_text(src, n.child_by_field_name("name"))
            body = n.child_by_field_name("body")
            if body is not None:
                qual = name
                recv = n.child_by_field_name("receiver")
                if recv is not None:
                    m = re.search(r"([A-Za-z_]\w*)\s*(?:\[[^\]]*\])?\s*\)\s*$", _node_text(src, recv))
                    qual = f"{m.group(1)}.{name}" if m else name
                text = "\n".join(_clean_comment(_node_text(src, c)) for c in docs)
                q = _query(rel, qual, text, n.start_point[0] + 1, n.end_point[0] + 1,
                           n.start_point[0] + 1, body.end_point[0] - body.start_point[0] + 1,
                           drop_name=name)
                if q:
                    found.append(q)
        for c in docs:
            _blank(data, c.start_byte, c.end_byte)
    return _strip_blank_lines(data.decode("utf-8")), found


# --- functions, for the baselines -----------------------------------------------------


def functions(tree: Path, language: str) -> list[tuple[str, int, str]]:
    """(file, first line, raw source) of every function/method of a built tree, nested
    included: the documents of the baselines (one raw chunk per function)."""
    ext = {"python": ".py", "javascript": ".js", "go": ".go"}[language]
    out: list[tuple[str, int, str]] = []
    for path in sorted(tree.rglob("*" + ext)):
        rel = path.relative_to(tree).as_posix()
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        spans: list[tuple[int, int]] = []
        if language == "python":
            for _, node in _py_functions(ast.parse(source)):
                deco = min([x.lineno for x in node.decorator_list] + [node.lineno])  # type: ignore
                spans.append((deco, node.end_lineno))  # type: ignore[attr-defined]
        elif language == "javascript":
            src = source.encode("utf-8")
            for _, _fn, owner in _js_functions(src, _parse("javascript", src).root_node):
                spans.append((owner.start_point[0] + 1, owner.end_point[0] + 1))
        else:
            src = source.encode("utf-8")
            for n in _parse("go", src).root_node.named_children:
                if n.type in ("function_declaration", "method_declaration"):
                    spans.append((n.start_point[0] + 1, n.end_point[0] + 1))
        out.extend((rel, a, "\n".join(lines[a - 1:b])) for a, b in spans)
    return out


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="fetch and build the eval corpora")
    ap.add_argument("--corpora", default=DEFAULT)
    ap.add_argument("--out", default="/tmp/ragex-eval3p")
    a = ap.parse_args()
    for name in a.corpora.split(","):
        tree, qs = build(CORPORA[name], Path(a.out), Path(a.out) / "_cache")
        files = sum(1 for p in tree.rglob("*") if p.is_file())
        print(f"{name}: {len(qs)} queries, {files} files", flush=True)
