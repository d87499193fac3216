"""Cutting a file into searchable pieces.

One chunk per definition (function, method, class, ...) because that is the
unit a person asks for; a class chunk carries its header, its own lines (class
attributes, docstring) and its member names, not the bodies of its methods,
which have chunks of their own.  Module-level code outside any definition
(imports, constants, ``if __name__ == "__main__"`` blocks) becomes ``block``
chunks so it stays findable.  Files without a grammar, and code whose parse
found no definition at all, fall back to overlapping line windows.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from ..textcodec import text_lines
from . import languages as L

log = logging.getLogger(__name__)

WINDOW_LINES = 40
WINDOW_OVERLAP = 10
BLOCK_MAX_LINES = 40
MAX_SIGNATURE = 300
MAX_DOC = 1200
#: The version of the rules above and below.  Raise it with any change that cuts,
#: names or places the chunks of an unchanged file differently (a definition's
#: line, its span, its name): an index records the rules it was chunked with, and
#: its next full run chunks every file again, so a fix reaches files nobody edits.
#: Chunks whose text is unchanged keep their vectors; only new texts are embedded.
#: 2: C/C++ attribute lines, SQL error recovery, `module.exports = function name`.
#: 3: PostgreSQL 14 `BEGIN ATOMIC` bodies, Kotlin annotation classes the grammar misreads,
#:    Jupyter notebooks by their cells.
CHUNK_RULES = "3"


def chunk_rules_change(theirs: str | None) -> str:
    """Why a full run chunks every file again, as the start of a sentence: an index
    cut by rules ``theirs`` (None: from before the rules were recorded).  Said in the
    run's progress and again in its summary, as an embedder change is
    (``embedding.embedder_change``): a first run after an upgrade that reads every
    file, unasked, must say why, or it looks like a bug."""
    which = f"version {theirs}" if theirs else "unrecorded"
    return (f"the index was chunked by older rules ({which}; this ragex's are version "
            f"{CHUNK_RULES})")
_COMMENT_LINE = re.compile(r"^\s*(#|//|/\*|\*|--|;)")


@dataclass
class Chunk:
    path: str
    start: int          # 1-based, inclusive
    end: int            # 1-based, inclusive
    kind: str           # function | method | class | ... | block | window
    name: str
    parent: str
    signature: str
    doc: str
    language: str
    code: str           # the text this chunk stands for (a class: without member bodies)
    members: list[str] = field(default_factory=list)
    #: the line a person calls "the definition": the one with ``def``/``class``/``fn``/
    #: ``function`` and the name, after any decorators, attributes or annotations that
    #: the span (``start``) includes; 0 = same as ``start`` (blocks, windows)
    line: int = 0

    @property
    def id(self) -> str:
        """Deterministic: the same code at the same place always gets the same id,
        so re-indexing an unchanged file is an idempotent upsert."""
        content = hashlib.sha1(self.code.encode("utf-8", "surrogatepass")).hexdigest()
        key = "\0".join((self.path, str(self.start), str(self.end), self.kind, self.name,
                         self.parent, content))
        return hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def chunk_file(path: str, text: str, language: str) -> list[Chunk]:
    """All chunks of one file, in line order.  Never raises on odd input."""
    lines = text_lines(text)
    if not lines:
        return []
    chunks: list[Chunk] = []
    if language == "jupyter":
        cells = _chunk_notebook(path, text)
        if cells is not None:
            return cells
    spec = L.SPECS.get(language)
    if spec is not None:
        try:
            chunks = _chunk_tree(path, text, lines, language, spec)
        except Exception as exc:  # a grammar bug must not stop indexing
            log.warning("could not parse %s as %s (%s); indexing it as text", path, language, exc)
            chunks = []
        if chunks:
            chunks.extend(_module_blocks(path, lines, language, chunks))
    if not chunks:
        chunks = _windows(path, lines, language)
    chunks.sort(key=lambda c: (c.start, -c.end, c.kind))
    unique: dict[str, Chunk] = {}
    for c in chunks:
        unique.setdefault(c.id, c)
    return list(unique.values())


def _chunk_notebook(path: str, text: str) -> list[Chunk] | None:
    """A notebook's chunks: each cell's source chunked by its language, its lines
    moved to the lines of the ``.ipynb`` its source strings are written on
    (``notebooks.py``); None when it is no notebook that can be read."""
    from .notebooks import NOTEBOOK, cells

    found = cells(text)
    if found is None:
        return None
    out: dict[str, Chunk] = {}
    for cell in found:
        def at(n: int, cell_lines: list[int] = cell.lines) -> int:
            return cell_lines[max(1, min(n, len(cell_lines))) - 1]
        for c in chunk_file(path, cell.text, cell.language):
            c.start, c.end, c.line = at(c.start), at(c.end), at(c.line) if c.line else 0
            c.language = NOTEBOOK
            out.setdefault(c.id, c)
    return sorted(out.values(), key=lambda c: (c.start, -c.end, c.kind))


# --- tree-sitter ------------------------------------------------------------------


_BODY_TYPES = frozenset({
    "block", "compound_statement", "declaration_list", "field_declaration_list", "class_body",
    "body_statement", "statement_block", "enum_body", "interface_body", "function_body",
    "enum_variant_list", "enumerator_list", "object_type", "struct_type", "interface_type",
    "constructor_body", "record_body", "annotation_type_body", "enum_member_declaration_list",
    "enum_class_body",
})
_NAME_TYPES = ("identifier", "type_identifier", "simple_identifier", "constant", "name",
               "property_identifier", "field_identifier", "scope_resolution",
               "value_name", "module_name", "type_constructor", "class_name", "variable",
               "type", "word", "atom", "symbol")
#: Elixir defines with macros: ``def name(args) do`` is a call whose target is ``def``.
_ELIXIR_DEFS = {"def": "function", "defp": "function", "defmacro": "function",
                "defmacrop": "function", "defguard": "function", "defmodule": "module",
                "defprotocol": "interface", "defimpl": "module"}
#: Children that come before a definition's own line: annotations, attributes, modifiers.
#: (C/C++ put ``[[nodiscard]]`` and ``__attribute__((...))`` lines inside the definition.)
_PREFIX_TYPES = frozenset({"decorator", "annotation", "marker_annotation", "modifiers",
                           "attribute_list", "attribute_item", "attribute", "comment",
                           "line_comment", "block_comment", "attribute_declaration",
                           "attribute_specifier"})
#: Words that may come before ``annotation class`` (``_Walker._kotlin_annotation_class``).
_KOTLIN_CLASS_MODIFIERS = frozenset({"public", "internal", "private", "protected", "expect",
                                     "actual"})
#: GNU make's built-in targets: they tune other rules, they do not make anything.
_MAKE_SPECIAL_TARGETS = frozenset({
    ".PHONY", ".SUFFIXES", ".DEFAULT", ".PRECIOUS", ".INTERMEDIATE", ".NOTINTERMEDIATE",
    ".SECONDARY", ".SECONDEXPANSION", ".DELETE_ON_ERROR", ".IGNORE", ".LOW_RESOLUTION_TIME",
    ".SILENT", ".EXPORT_ALL_VARIABLES", ".NOTPARALLEL", ".ONESHELL", ".POSIX"})
_FUNC_VALUE_TYPES = frozenset({"arrow_function", "function", "function_expression",
                               "generator_function"})


class _Walker:
    def __init__(self, path: str, src: bytes, lines: list[str], language: str,
                 spec: L.LangSpec) -> None:
        self.path, self.src, self.lines, self.language, self.spec = (
            path, src, lines, language, spec)
        self.chunks: list[Chunk] = []

    def text(self, node: Any) -> str:
        return self.src[node.start_byte:node.end_byte].decode("utf-8", "replace")

    # -- names --------------------------------------------------------------------

    def name_of(self, node: Any) -> tuple[str, str]:
        """(name, qualifier) — the qualifier is a class named in the definition
        itself, as in C++ ``void Foo::bar() {}``."""
        if self.language == "hcl" and node.type == "block":  # resource "aws_instance" "web"
            return " ".join(self.text(c).strip('"') for c in node.named_children
                            if c.type in ("identifier", "string_lit")), ""
        if self.language == "make" and node.type == "rule":   # install-doc: install-man
            targets = node.child_by_field_name("targets") or next(iter(node.named_children), None)
            return (" ".join(self.text(targets).split()) if targets is not None else ""), ""
        if self.language == "objc":
            sel = node.child_by_field_name("selector")
            if sel is not None:  # - (int)setValue:(int)v forKey:(id)k -> setValue:forKey:
                if sel.type != "keyword_selector":
                    return self.text(sel), ""
                return "".join(self.text(k).split(":", 1)[0].strip() + ":"
                               for k in sel.named_children
                               if k.type == "keyword_declarator"), ""
        n = (node.child_by_field_name("name") or node.child_by_field_name("pattern")
             or node.child_by_field_name("function_name"))
        if n is None and self.spec.name_in:
            holder = next((c for c in node.named_children if c.type in self.spec.name_in), None)
            if holder is not None:
                n = (holder.child_by_field_name("name")
                     or holder.child_by_field_name("function_name")
                     or next((g for g in holder.named_children if g.type in _NAME_TYPES
                              or g.type.endswith(("identifier", "type_name"))), None))
        if n is None and node.type in ("class", "instance", "fun_decl"):
            for c in node.named_children:   # Haskell class_head / Erlang function_clause
                if c.type in ("class_head", "instance_head", "function_clause"):
                    n = c.child_by_field_name("name") or c.child_by_field_name("class") or \
                        next((g for g in c.named_children if g.type in _NAME_TYPES
                              or g.type == "class_name"), None)
        if n is not None:
            return self._split_qualified(self.text(n))
        d = node.child_by_field_name("declarator")
        while d is not None:
            if d.type in ("identifier", "field_identifier", "type_identifier",
                          "destructor_name", "operator_name"):
                return self.text(d), ""
            if d.type == "qualified_identifier":
                return self._split_qualified(self.text(d))
            nxt = d.child_by_field_name("declarator")
            if nxt is None:
                for c in d.named_children:
                    if c.type in ("identifier", "field_identifier", "qualified_identifier",
                                  "destructor_name", "operator_name"):
                        nxt = c
                        break
            d = nxt
        for c in node.named_children:
            if c.type in _NAME_TYPES:
                return self._split_qualified(self.text(c))
        return "", ""

    @staticmethod
    def _split_qualified(name: str) -> tuple[str, str]:
        name = re.sub(r"\s+", "", name)
        parts = [p for p in re.split(r"::|\.|:", name) if p]   # Lua: M.f, M:f
        if len(parts) >= 2:
            return parts[-1], parts[-2]
        return name, ""

    def def_line(self, node: Any) -> int:
        """The definition's own line: where its name is written when the grammar
        names it (Java/C#/TypeScript put annotations and modifiers inside the node),
        else where the node starts (Python's decorators and Rust's attributes are
        outside it; ``export`` and ``template<>`` wrap it)."""
        start = node.start_point[0] + 1
        n = node.child_by_field_name("name")
        if n is not None:
            return max(start, n.start_point[0] + 1)
        for c in node.children:
            if c.type not in _PREFIX_TYPES:
                return c.start_point[0] + 1
        return start

    # -- pieces -------------------------------------------------------------------

    def body_of(self, node: Any) -> Any | None:
        b = node.child_by_field_name("body")
        if b is not None:
            return b
        for c in node.named_children:
            if c.type in _BODY_TYPES:
                return c
        return None

    def signature_of(self, node: Any, body: Any | None, lead: Any | None = None) -> str:
        end = body.start_byte if body is not None else node.end_byte
        begin = lead.start_byte if lead is not None else node.start_byte
        sig = self.src[begin:end].decode("utf-8", "replace")
        if body is None:
            sig = sig.split("\n", 1)[0]
        if self.language in ("python", "ruby"):
            sig = re.sub(r"(?m)\s#[^\n'\"]*$", "", sig)
        else:
            sig = re.sub(r"(?m)\s//[^\n'\"]*$", "", sig)
        sig = " ".join(sig.split()).rstrip("{:= ").strip()
        return sig[:MAX_SIGNATURE]

    def doc_of(self, node: Any, outer: Any, body: Any | None) -> str:
        if self.spec.python_docstrings and body is not None:
            first = next(iter(body.named_children), None)
            if first is not None and first.type == "expression_statement":
                s = next(iter(first.named_children), None)
                if s is not None and s.type == "string":
                    return _clean_docstring(self.text(s))[:MAX_DOC]
        lisp_doc = self._lisp_docstring(node)
        if lisp_doc is not None:
            return _clean_docstring(self.text(lisp_doc))[:MAX_DOC]
        # leading comments, contiguous with the definition
        parts: list[str] = []
        cur = outer
        prev = cur.prev_named_sibling
        while prev is not None and prev.type in self.spec.comment_types \
                and prev.end_point[0] >= cur.start_point[0] - 1:
            parts.append(self.text(prev))
            cur = prev
            prev = cur.prev_named_sibling
        if not parts:
            return ""
        return _clean_comment("\n".join(reversed(parts)))[:MAX_DOC]

    def _lisp_docstring(self, node: Any) -> Any | None:
        """A Lisp ``defun``'s string before its body (Emacs Lisp's grammar names it).
        A string that is the only form is the function's value, not its doc."""
        if self.language == "elisp":
            ds = node.child_by_field_name("docstring")
            return ds if ds is not None and ds.next_named_sibling is not None else None
        if self.language == "commonlisp" and node.type == "defun":
            forms = [c for c in node.named_children if c.type != "defun_header"
                     and "comment" not in c.type]
            if len(forms) >= 2 and forms[0].type == "str_lit":
                return forms[0]
        return None

    def kind_for(self, node: Any, kind: str) -> str:
        if node.type == "type_spec":
            t = node.child_by_field_name("type")
            if t is not None and t.type == "struct_type":
                return "struct"
            if t is not None and t.type == "interface_type":
                return "interface"
        if self.spec.keyword_kinds and kind == "class":  # Kotlin interface, Swift struct
            for c in node.children:
                if not c.is_named and c.type in self.spec.keyword_kinds:
                    return self.spec.keyword_kinds[c.type]
        return kind

    # -- walk ---------------------------------------------------------------------

    def walk(self, node: Any, parent: str, parent_kind: str) -> list[str]:
        """Chunk the definitions under ``node``; return the names of the direct ones."""
        names: list[str] = []
        for child in node.named_children:
            t = child.type
            if t in self.spec.transparent:
                tnode = child.child_by_field_name(self.spec.transparent[t])
                tname = self._split_qualified(self.text(tnode))[0] if tnode is not None else ""
                tname = re.sub(r"<.*", "", tname)
                self.walk(child, tname or parent, "impl")
                continue
            kind = self.spec.defs.get(t)
            if kind is None and self.spec.binders and t in self.spec.binders:
                bound = self._bound_value(child)
                if bound is not None:
                    emitted = self.emit(child, bound[0], parent, parent_kind, named=bound[1])
                    if emitted:
                        names.append(emitted)
                    continue
            if kind is None and self.spec.heads and t == "list_lit":
                head = self._head_def(child)
                if head is not None:
                    emitted = self.emit(child, head[0], parent, parent_kind, named=head[1])
                    if emitted:
                        names.append(emitted)
                    continue
            if kind is None and self.language == "kotlin" and t == "prefix_expression" \
                    and node.type != "prefix_expression":
                named = self._kotlin_annotation_class(child)
                if named is not None:
                    emitted = self.emit(child, "class", parent, parent_kind, named=(named, ""))
                    if emitted:
                        names.append(emitted)
                    continue
            if kind is None and self.language == "elixir" and t == "call":
                emitted = self._elixir_def(child, parent, parent_kind)
                if emitted is not None:
                    if emitted:
                        names.append(emitted)
                    continue
            if kind is None:
                fn = self._function_value(child)
                if fn is not None:
                    decl, name = fn
                    owner, owner_kind = parent, parent_kind
                    if child.type == "expression_statement":  # obj.name = function ...
                        name, qualifier = name
                        if qualifier:
                            owner, owner_kind = qualifier, "object"
                    names.append(name)
                    self._emit_function_value(child, decl, name, owner, owner_kind)
                    continue
                names.extend(self.walk(child, parent, parent_kind))
                continue
            emitted = self.emit(child, kind, parent, parent_kind)
            if emitted:
                names.append(emitted)
        return names

    def _function_value(self, node: Any) -> tuple[Any, Any] | None:
        """``const f = () => ...``, class fields holding a function (value, name), and
        ``obj.name = function ...`` (value, (name, obj))."""
        if self.language not in ("javascript", "typescript", "tsx"):
            return None
        if node.type in ("lexical_declaration", "variable_declaration"):
            decls = [c for c in node.named_children if c.type == "variable_declarator"]
            if len(decls) == 1:
                value = decls[0].child_by_field_name("value")
                name = decls[0].child_by_field_name("name")
                if value is not None and name is not None and value.type in _FUNC_VALUE_TYPES:
                    return value, self.text(name)
        if node.type == "expression_statement" and node.named_child_count == 1:
            # app.use = function use(fn) {...}, exports.parse = (s) => ..., Foo.prototype.bar = ...
            assign = node.named_children[0]
            if assign.type == "assignment_expression":
                left = assign.child_by_field_name("left")
                value = assign.child_by_field_name("right")
                if left is not None and value is not None and value.type in _FUNC_VALUE_TYPES \
                        and left.type in ("member_expression", "identifier"):
                    parts = [p for p in self.text(left).replace("?.", ".").split(".")
                             if p and p != "prototype"]
                    qualifier = parts[-2] if len(parts) >= 2 else ""
                    if qualifier in ("exports", "module", "this", "window", "self", "globalThis"):
                        qualifier = ""
                    own = value.child_by_field_name("name")
                    if parts in (["module", "exports"], ["exports"]) and own is not None:
                        # `module.exports = function query(options)`: the module *is*
                        # `query` (Express's middleware); "exports" names nothing
                        return value, (self.text(own), "")
                    return value, (parts[-1], qualifier)
        if node.type in ("field_definition", "public_field_definition"):
            value = node.child_by_field_name("value")
            name = node.child_by_field_name("name") or node.child_by_field_name("property")
            if value is not None and name is not None and value.type in _FUNC_VALUE_TYPES:
                return value, self.text(name)
        return None

    def _bound_value(self, node: Any) -> tuple[str, tuple[str, str]] | None:
        """(kind, (name, qualifier)) when ``node`` binds a name to a function or a type:
        R's ``f <- function(x)``, Lua's ``M.f = function()``, Zig's ``const S = struct {}``.
        The value is looked for two levels down at most (Lua wraps it in an
        ``expression_list``), so a function passed to a call is not taken for one."""
        level = [c for c in node.named_children]
        value = None
        for _ in range(2):
            value = next((c for c in level if c.type in self.spec.values), None)
            if value is not None:
                break
            level = [g for c in level for g in c.named_children]
        if value is None:
            return None
        name_node = node.child_by_field_name("name")
        if name_node is None:
            name_node = next((c for c in node.named_children
                              if c.start_byte < value.start_byte and "comment" not in c.type),
                             None)
        if name_node is None:
            return None
        name, qualifier = self._split_qualified(self.text(name_node))
        if not name or "," in name:   # a, b = function() ... end: not one definition
            return None
        return self.spec.values[value.type], (name, qualifier)

    def _head_def(self, node: Any) -> tuple[str, tuple[str, str]] | None:
        """Lisp list forms that define: ``(defclass name ...)`` -> (kind, (name, ""))."""
        items = node.named_children
        if len(items) < 2 or items[0].type != "sym_lit":
            return None
        kind = self.spec.heads.get(self.text(items[0]).lower())
        if kind is None:
            return None
        target = items[1]
        if target.type == "list_lit" and target.named_children:  # (defstruct (point ...))
            target = target.named_children[0]
        return kind, (self.text(target).lstrip(":#"), "")

    def _kotlin_annotation_class(self, node: Any) -> str | None:
        """The name of an ``annotation class`` the Kotlin grammar misreads as an
        expression, or None.  After an annotation with arguments on its line
        (``@Target(AnnotationTarget.FIELD) annotation class Q``), a class without a
        constructor is parsed as annotations applied to the infix expression
        ``annotation class Q``: the class had no chunk, no symbol, nothing to find
        by name.  Its annotations stay in the span, as a well-read class's do."""
        while node.type == "prefix_expression" and node.named_children:
            node = node.named_children[-1]
        if node.type != "infix_expression":
            return None
        words = [self.text(c) for c in node.named_children]
        if len(words) < 3 or any(c.type != "simple_identifier" for c in node.named_children) \
                or words[-3:-1] != ["annotation", "class"] \
                or not set(words[:-3]) <= _KOTLIN_CLASS_MODIFIERS:
            return None
        return words[-1]

    def _elixir_def(self, node: Any, parent: str, parent_kind: str) -> str | None:
        """Chunk ``def``/``defp``/``defmodule``... calls; None when ``node`` is another call."""
        target = node.child_by_field_name("target")
        kind = _ELIXIR_DEFS.get(self.text(target)) if target is not None else None
        if kind is None:
            return None
        args = next((c for c in node.named_children if c.type == "arguments"), None)
        head = args.named_children[0] if args is not None and args.named_children else None
        if head is not None and head.type == "binary_operator":   # def f(x) when x > 0
            head = head.child_by_field_name("left") or head
        if head is not None and head.type == "call":
            head = head.child_by_field_name("target") or head
        name = self.text(head) if head is not None else ""
        if kind == "function" and parent_kind in L.CONTAINER_KINDS:
            kind = "method"
        start, end = node.start_point[0] + 1, node.end_point[0] + 1
        sig = " ".join(self.text(node).split("\n", 1)[0].split()).removesuffix(" do")
        chunk = Chunk(self.path, start, end, kind, name, parent, sig[:MAX_SIGNATURE],
                      self.doc_of(node, node, None), self.language, "", line=start)
        before = len(self.chunks)
        self.chunks.append(chunk)
        body = next((c for c in node.named_children if c.type == "do_block"), None)
        if kind in L.CONTAINER_KINDS and body is not None:
            chunk.members = self.walk(body, name, kind)
            covered: set[int] = set()
            for c in self.chunks[before + 1:]:
                covered.update(range(c.start, c.end + 1))
            chunk.code = "\n".join(self.lines[i - 1] for i in range(start, end + 1)
                                   if i not in covered)
        else:
            chunk.code = self._lines(start, end)
        return name

    def _emit_function_value(self, node: Any, value: Any, name: str, parent: str,
                             parent_kind: str) -> None:
        outer = self._outer(node)
        kind = "method" if parent_kind in L.CONTAINER_KINDS else "function"
        body = value.child_by_field_name("body")
        sig = self.signature_of(node, body)
        doc = self.doc_of(node, outer, body)
        start, end = outer.start_point[0] + 1, outer.end_point[0] + 1
        self.chunks.append(Chunk(self.path, start, end, kind, name, parent, sig, doc,
                                 self.language, self._lines(start, end),
                                 line=self.def_line(node)))
        self.walk(value, name, kind)

    def _outer(self, node: Any) -> Any:
        """The node whose span the definition owns: decorators, ``export``,
        ``template<>``, Go's ``type`` keyword — unless the wrapper groups several
        definitions (``type ( A struct{}; B int )``)."""
        outer = node
        while outer.parent is not None and outer.parent.type in self.spec.wrappers:
            siblings = [c for c in outer.parent.named_children if c.type == outer.type]
            if len(siblings) > 1:
                break
            outer = outer.parent
        return outer

    def _first_node(self, outer: Any) -> Any:
        """Where the span starts: TypeScript puts a method's decorators before it as
        siblings in the class body, not inside it, and Elm a function's type
        annotation; they belong to the definition."""
        first = outer
        prev = outer.prev_named_sibling
        while prev is not None and prev.type in self.spec.prefix_siblings:
            first, prev = prev, prev.prev_named_sibling
        return first

    def _last_line(self, node: Any) -> int:
        """The last line a node covers, trailing whitespace left out: Fortran's ``end
        function`` and Make's ``endef`` take the newlines after them (in fixed-form
        Fortran, the next line's label columns too), and two definitions in a row
        must not share a line."""
        tail = self.src[max(node.start_byte, node.end_byte - 256):node.end_byte]
        return node.end_point[0] + 1 - tail.count(b"\n", len(tail.rstrip()))

    def _unreadable_edges(self, node: Any, body: Any | None) -> tuple[Any | None, Any | None]:
        """Where error recovery glued text the grammar cannot read onto a definition:
        (the child the definition really starts at, the last child it really ends
        with), each None when that edge is sound.  The SQL grammar knows no
        ``CREATE OPERATOR`` or ``BEGIN ATOMIC``: it folds them into the next or the
        previous ``CREATE FUNCTION`` as ERROR children before its name or after its
        body, and the chunk then claimed a hundred lines of other statements.  Only
        those two edges are trimmed: an ERROR between the name and the body is the
        definition's own broken code and stays in it."""
        kids = node.children
        lead = None
        for i, c in enumerate(kids):
            if c.type == "ERROR":
                lead = kids[i + 1] if i + 1 < len(kids) else None
            elif c.is_named:
                break
        tail = None
        if body is not None:
            at = next((i for i, c in enumerate(kids) if c.start_byte == body.start_byte
                       and c.end_byte == body.end_byte and c.type == body.type), None)
            if at is not None:
                for c in kids[at + 1:]:
                    if c.type == "ERROR":
                        tail = body
                        break
                    body = c
        return lead, tail

    def _lines(self, start: int, end: int) -> str:
        return "\n".join(self.lines[start - 1:end])

    def emit(self, node: Any, kind: str, parent: str, parent_kind: str,
             named: tuple[str, str] | None = None) -> str | None:
        name, qualifier = named if named is not None else self.name_of(node)
        kind = self.kind_for(node, kind)
        body = self.body_of(node)
        if kind in L.CONTAINER_KINDS and body is None and self.language in ("c", "cpp"):
            return None  # `struct foo x;` names a type, it does not define one
        if self.language == "make" and name in _MAKE_SPECIAL_TARGETS:
            return None  # `.PHONY: all` says something about a rule, it is not one
        if node.type == "method_declaration" and self.language == "go":
            recv = node.child_by_field_name("receiver")
            if recv is not None:
                m = re.findall(r"[A-Za-z_]\w*", self.text(recv))
                qualifier = m[-1] if m else ""
                # `(s *Server)` -> Server; generics `(l *List[T])` -> List
                tm = re.search(r"\*?\s*([A-Za-z_]\w*)\s*(?:\[[^\]]*\])?\s*\)\s*$",
                               self.text(recv))
                if tm:
                    qualifier = tm.group(1)
        if qualifier and kind in L.FUNCTION_KINDS:
            parent = qualifier
            kind = "method"
        elif kind == "function" and parent_kind in L.CONTAINER_KINDS:
            kind = "method"
        if kind == "function" and node.type in ("singleton_method",):
            kind = "method" if parent else "function"
        outer = self._outer(node)
        first = self._first_node(outer)
        start, end = first.start_point[0] + 1, self._last_line(outer)
        lead, tail = self._unreadable_edges(node, body)
        if lead is not None:
            start = max(start, lead.start_point[0] + 1)
        if tail is not None:
            end = min(end, self._last_line(tail))
        sig = self.signature_of(node, body, lead)
        if node.type == "type_spec":
            sig = f"type {sig} {kind}" if kind in ("struct", "interface") else f"type {sig}"
        doc = self.doc_of(node, first, body) if lead is None else ""
        before = len(self.chunks)
        chunk = Chunk(self.path, start, end, kind, name, parent, sig, doc, self.language, "",
                      line=max(start, self.def_line(node)))
        self.chunks.append(chunk)
        inner_kind = kind if kind in L.CONTAINER_KINDS else ("function" if kind in
                                                             L.FUNCTION_KINDS else kind)
        members = self.walk(node, name if name else parent, inner_kind)
        if kind in L.CONTAINER_KINDS:
            chunk.members = members
            covered: set[int] = set()
            for c in self.chunks[before + 1:]:
                if c.parent == name:
                    covered.update(range(c.start, c.end + 1))
            own = [self.lines[i - 1] for i in range(start, end + 1) if i not in covered]
            chunk.code = "\n".join(own)
        else:
            chunk.code = self._lines(start, end)
        return name


#: A PostgreSQL 14 SQL-standard function body, ``BEGIN ATOMIC stmt; ... END``: its
#: closing END is the first one right after a statement's ``;`` (a CASE's END is
#: inside a statement).  An empty body (``BEGIN ATOMIC END``) has none.
_ATOMIC_BODY = re.compile(rb"\bBEGIN(\s+)ATOMIC\b((?:.*?;)?\s*)END\b", re.IGNORECASE | re.DOTALL)


def _quote_atomic_bodies(src: bytes) -> bytes:
    """``src`` with each ``BEGIN ATOMIC ... END`` body turned into a dollar-quoted one
    of the same length (``AS $r$ ... $r$``), for the parser only: the SQL grammar
    knows no BEGIN ATOMIC, so it ran the function on past its END and read every
    later CREATE FUNCTION or PROCEDURE of the file as error recovery inside it, with
    no chunk and no name of its own.  Byte offsets and lines stay the same, and the
    chunks' text is read from the file's own lines."""
    def quoted(m: re.Match[bytes]) -> bytes:
        head = b"AS" + m.group(1) + b"$r$"
        head += b" " * (len(b"BEGIN") + len(m.group(1)) + len(b"ATOMIC") - len(head))
        return head + m.group(2) + b"$r$"
    return _ATOMIC_BODY.sub(quoted, src)


def _chunk_tree(path: str, text: str, lines: list[str], language: str,
                spec: L.LangSpec) -> list[Chunk]:
    parser = L.parser_for(language)
    if parser is None:
        return []
    src = text.encode("utf-8", "surrogatepass")
    if language == "sql":
        src = _quote_atomic_bodies(src)
    tree = parser.parse(src)
    walker = _Walker(path, src, lines, language, spec)
    walker.walk(tree.root_node, "", "")
    return walker.chunks


def _module_blocks(path: str, lines: list[str], language: str,
                   chunks: list[Chunk]) -> list[Chunk]:
    """Runs of lines outside every definition, cut into blocks of <= 40 lines."""
    covered = [False] * (len(lines) + 2)
    for c in chunks:
        for i in range(c.start, min(c.end, len(lines)) + 1):
            covered[i] = True
    out: list[Chunk] = []
    run: list[int] = []

    def flush() -> None:
        while run and not lines[run[0] - 1].strip():
            run.pop(0)
        while run and not lines[run[-1] - 1].strip():
            run.pop()
        for i in range(0, len(run), BLOCK_MAX_LINES):
            part = run[i:i + BLOCK_MAX_LINES]
            body = [lines[j - 1] for j in part]
            code = [b for b in body if b.strip() and not _COMMENT_LINE.match(b)]
            if sum(1 for b in body if b.strip()) < 2 or not code:
                continue  # a lone line or a comment banner is not worth a vector
            out.append(Chunk(path, part[0], part[-1], "block", "", "", "", "", language,
                             "\n".join(body)))
        run.clear()

    for i in range(1, len(lines) + 1):
        if covered[i]:
            flush()
        else:
            run.append(i)
    flush()
    return out


def _windows(path: str, lines: list[str], language: str) -> list[Chunk]:
    out: list[Chunk] = []
    step = WINDOW_LINES - WINDOW_OVERLAP
    n = len(lines)
    i = 0
    while i < n:
        j = min(n, i + WINDOW_LINES)
        body = lines[i:j]
        if any(b.strip() for b in body):
            title = ""
            if language in ("markdown", "rst"):
                title = next((b.lstrip("#").strip() for b in body if b.startswith("#")), "")
            out.append(Chunk(path, i + 1, j, "window", title[:120], "", "", "", language,
                             "\n".join(body)))
        if j >= n:
            break
        i += step
    return out


# --- comment cleaning ---------------------------------------------------------------


def _clean_docstring(literal: str) -> str:
    s = literal.strip()
    m = re.match(r"^[rRbBuUfF]*('''|\"\"\"|'|\")", s)
    if m:
        q = m.group(1)
        s = s[m.end():]
        if s.endswith(q):
            s = s[:-len(q)]
    return _dedent(s)


def _clean_comment(text: str) -> str:
    out = []
    for line in text.splitlines():
        line = line.strip()
        line = re.sub(r"^(/\*\*?|\*/|\*|///?|//!|#+|\{-\|?|--|;+)", "", line)
        line = re.sub(r"(\*/|-\})$", "", line).strip()   # C's */, Elm's and Haskell's -}
        out.append(line)
    return "\n".join(out).strip()


def _dedent(s: str) -> str:
    lines = s.expandtabs().splitlines()
    if not lines:
        return ""
    rest = [ln for ln in lines[1:] if ln.strip()]
    indent = min((len(ln) - len(ln.lstrip()) for ln in rest), default=0)
    return "\n".join([lines[0].strip()] + [ln[indent:] for ln in lines[1:]]).strip()
