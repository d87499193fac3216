"""Which language a file is, and how its tree-sitter grammar spells a definition.

The chunker is generic: it walks a syntax tree and cuts one chunk per node whose
type is listed here.  Adding a language is therefore a table entry, not code
(its extensions go in ``ragexd/filetypes.py``, which the client reads too).
Grammars come from ``tree_sitter_languages`` 1.10.2 (tree-sitter 0.21 API).
Three come from standalone grammar wheels instead, pinned to the last releases
built for language ABI 14 (what tree-sitter 0.21 reads): Lua (the wheel's Lua
grammar parses nothing), Swift (missing from the wheel's shared library) and
Zig (not in the wheel).  Without them installed those languages degrade to
line windows, as every language without a grammar does.
"""

from __future__ import annotations

import logging
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

from ..filetypes import (ALIASES, EXTENSIONS, FILENAMES, extensions_for,  # noqa: F401
                         known_languages, language_for, normalise_language)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LangSpec:
    """How to find definitions in one grammar.

    ``defs`` maps a node type to the kind of chunk it makes.  Kinds in
    ``CONTAINER_KINDS`` hold methods: a function found inside one becomes a
    ``method`` whose ``parent`` is the container's name.  ``transparent`` node
    types are containers that make no chunk of their own (a Rust ``impl``
    block, whose name is the type it implements).
    """

    name: str
    grammar: str
    defs: dict[str, str]
    transparent: dict[str, str] = field(default_factory=dict)  # node type -> field/how to name
    comment_types: tuple[str, ...] = ("comment",)
    # wrappers whose span belongs to the definition they wrap (decorators, export, template<>)
    wrappers: tuple[str, ...] = ()
    python_docstrings: bool = False
    #: a standalone grammar wheel's module (``tree_sitter_lua``), when the grammar
    #: does not come from ``tree_sitter_languages``
    module: str = ""
    #: children that hold the name when the definition has no ``name`` field
    #: (Fortran's ``function_statement``, Elm's ``function_declaration_left``)
    name_in: tuple[str, ...] = ()
    #: nodes that bind a name to a value (``f <- function(x)``, ``M.f = function()``,
    #: ``const S = struct {}``): a definition when the value's type is in ``values``
    binders: tuple[str, ...] = ()
    values: dict[str, str] = field(default_factory=dict)
    #: list forms defined by their head symbol (Lisp ``(defclass name ...)``)
    heads: dict[str, str] = field(default_factory=dict)
    #: kind decided by a keyword child (Swift's ``class_declaration`` is also
    #: ``struct``/``enum``/``extension``; Kotlin's is also ``interface``/``enum``)
    keyword_kinds: dict[str, str] = field(default_factory=dict)
    #: siblings just before a definition that belong to its span (TypeScript
    #: decorators of a class member, Elm's type annotation)
    prefix_siblings: tuple[str, ...] = ("decorator",)


CONTAINER_KINDS = frozenset({"class", "interface", "struct", "enum", "trait", "module",
                             "object", "record", "impl"})
FUNCTION_KINDS = frozenset({"function", "method"})
#: Kinds a symbol search returns first: real definitions.
DEFINITION_KINDS = ("class", "function", "method", "interface", "struct", "enum", "trait",
                    "module", "object", "record", "type", "rule")

_JS_DEFS = {
    "function_declaration": "function",
    "generator_function_declaration": "function",
    "class_declaration": "class",
    "method_definition": "function",
}
_TS_DEFS = dict(_JS_DEFS, **{
    "abstract_class_declaration": "class",
    "interface_declaration": "interface",
    "enum_declaration": "enum",
    "type_alias_declaration": "type",
    "method_signature": "function",
    "abstract_method_signature": "function",
    "function_signature": "function",
})

_FORTRAN_DEFS = {"module": "module", "program": "module", "function": "function",
                 "subroutine": "function", "derived_type_definition": "type",
                 "interface": "interface"}
_FORTRAN_NAMES = ("module_statement", "program_statement", "function_statement",
                  "subroutine_statement", "derived_type_statement", "interface_statement")

SPECS: dict[str, LangSpec] = {
    "python": LangSpec(
        "python", "python",
        defs={"function_definition": "function", "class_definition": "class"},
        wrappers=("decorated_definition",), python_docstrings=True),
    "javascript": LangSpec(
        "javascript", "javascript", defs=_JS_DEFS, wrappers=("export_statement",)),
    "typescript": LangSpec(
        "typescript", "typescript", defs=_TS_DEFS, wrappers=("export_statement",)),
    "tsx": LangSpec("tsx", "tsx", defs=_TS_DEFS, wrappers=("export_statement",)),
    "go": LangSpec(
        "go", "go",
        defs={"function_declaration": "function", "method_declaration": "method",
              "type_spec": "type"},
        wrappers=("type_declaration",)),
    "rust": LangSpec(
        "rust", "rust",
        defs={"function_item": "function", "function_signature_item": "function",
              "struct_item": "struct", "enum_item": "enum", "trait_item": "trait",
              "union_item": "struct"},
        transparent={"impl_item": "type"},
        comment_types=("line_comment", "block_comment")),
    "java": LangSpec(
        "java", "java",
        defs={"class_declaration": "class", "interface_declaration": "interface",
              "enum_declaration": "enum", "record_declaration": "record",
              "annotation_type_declaration": "interface",
              "method_declaration": "function", "constructor_declaration": "function"},
        comment_types=("line_comment", "block_comment", "comment")),
    "c": LangSpec(
        "c", "c",
        defs={"function_definition": "function", "struct_specifier": "struct",
              "enum_specifier": "enum", "union_specifier": "struct"}),
    "cpp": LangSpec(
        "cpp", "cpp",
        defs={"function_definition": "function", "class_specifier": "class",
              "struct_specifier": "struct", "enum_specifier": "enum",
              "union_specifier": "struct"},
        wrappers=("template_declaration",)),
    "c_sharp": LangSpec(
        "c_sharp", "c_sharp",
        defs={"class_declaration": "class", "interface_declaration": "interface",
              "struct_declaration": "struct", "enum_declaration": "enum",
              "record_declaration": "record", "method_declaration": "function",
              "constructor_declaration": "function", "destructor_declaration": "function",
              "local_function_statement": "function"}),
    "ruby": LangSpec(
        "ruby", "ruby",
        defs={"method": "function", "singleton_method": "function", "class": "class",
              "module": "module", "singleton_class": "class"}),
    "php": LangSpec(
        "php", "php",
        defs={"function_definition": "function", "method_declaration": "function",
              "class_declaration": "class", "interface_declaration": "interface",
              "trait_declaration": "trait", "enum_declaration": "enum"}),
    "kotlin": LangSpec(
        "kotlin", "kotlin",
        defs={"function_declaration": "function", "class_declaration": "class",
              "object_declaration": "object"},
        keyword_kinds={"interface": "interface", "enum": "enum"},
        comment_types=("comment", "multiline_comment", "line_comment")),
    # More grammars of the wheel, by the same generic rule: the node types that define
    # functions, methods, classes, modules and types (checked on real code in
    # tests/engine/test_chunking.py and, on code from real packages,
    # tests/engine/test_real_code.py).
    "scala": LangSpec(
        "scala", "scala",
        defs={"function_definition": "function", "function_declaration": "function",
              "class_definition": "class", "object_definition": "object",
              "trait_definition": "trait", "enum_definition": "enum"},
        comment_types=("comment", "block_comment")),
    "shell": LangSpec("shell", "bash", defs={"function_definition": "function"}),
    "haskell": LangSpec(
        "haskell", "haskell",
        defs={"function": "function", "adt": "type", "newtype": "type", "class": "class",
              "instance": "class"}),
    "ocaml": LangSpec(
        "ocaml", "ocaml",
        defs={"let_binding": "function", "module_binding": "module", "type_binding": "type",
              "class_binding": "class", "method_definition": "method"}),
    "sql": LangSpec(
        "sql", "sql",
        defs={"create_function_statement": "function", "create_table_statement": "type",
              "create_view_statement": "type"},
        comment_types=("comment", "marginalia")),
    "hcl": LangSpec("hcl", "hcl", defs={"block": "object"}),
    "elixir": LangSpec("elixir", "elixir", defs={}),   # def/defmodule are calls: chunking.py
    "julia": LangSpec(
        "julia", "julia",
        defs={"function_definition": "function", "short_function_definition": "function",
              "macro_definition": "function", "struct_definition": "struct",
              "module_definition": "module", "abstract_definition": "type"},
        comment_types=("comment", "line_comment", "block_comment")),
    "perl": LangSpec("perl", "perl", defs={"function_definition": "function"}),
    "elisp": LangSpec(
        "elisp", "elisp", defs={"function_definition": "function",
                                "macro_definition": "function"}),
    "erlang": LangSpec("erlang", "erlang", defs={"fun_decl": "function"}),
    "lua": LangSpec(
        "lua", "lua", module="tree_sitter_lua",
        defs={"function_declaration": "function"},
        binders=("assignment_statement", "field"), values={"function_definition": "function"}),
    "swift": LangSpec(
        "swift", "swift", module="tree_sitter_swift",
        defs={"class_declaration": "class", "protocol_declaration": "interface",
              "function_declaration": "function", "protocol_function_declaration": "function",
              "init_declaration": "function", "deinit_declaration": "function",
              "typealias_declaration": "type"},
        keyword_kinds={"struct": "struct", "enum": "enum", "extension": "impl",
                       "actor": "class"},
        comment_types=("comment", "multiline_comment")),
    "zig": LangSpec(
        "zig", "zig", module="tree_sitter_zig",
        defs={"function_declaration": "function"},
        binders=("variable_declaration",),
        values={"struct_declaration": "struct", "enum_declaration": "enum",
                "union_declaration": "struct", "opaque_declaration": "type"}),
    "objc": LangSpec(
        "objc", "objc",
        defs={"class_interface": "class", "class_implementation": "class",
              "category_interface": "class", "category_implementation": "class",
              "protocol_declaration": "interface", "method_definition": "method",
              "method_declaration": "method", "function_definition": "function",
              "struct_specifier": "struct", "enum_specifier": "enum"}),
    "r": LangSpec(
        "r", "r", defs={},
        binders=("left_assignment", "equals_assignment", "super_assignment"),
        values={"function_definition": "function"}),
    "elm": LangSpec(
        "elm", "elm",
        defs={"value_declaration": "function", "type_declaration": "type",
              "type_alias_declaration": "type", "port_annotation": "function"},
        name_in=("function_declaration_left",), prefix_siblings=("type_annotation",),
        comment_types=("line_comment", "block_comment")),
    # free form (.f90) and fixed form (.f): two grammars, one rule
    "fortran": LangSpec("fortran", "fortran", defs=_FORTRAN_DEFS, name_in=_FORTRAN_NAMES),
    "fortran_fixed": LangSpec("fortran_fixed", "fixed_form_fortran", defs=_FORTRAN_DEFS,
                              name_in=_FORTRAN_NAMES),
    "commonlisp": LangSpec(
        "commonlisp", "commonlisp",
        defs={"defun": "function"}, name_in=("defun_header",),
        heads={"defclass": "class", "defstruct": "struct", "define-condition": "class",
               "defpackage": "module", "deftype": "type"}),
    "make": LangSpec(
        "make", "make", defs={"rule": "rule", "define_directive": "function"}),
}

_parsers: dict[str, Any] = {}
_grammar_errors: dict[str, str] = {}
_parsers_lock = threading.Lock()


def parser_for(language: str) -> Any | None:
    """A tree-sitter parser for ``language``, or None when it has no grammar.

    Parsers are not thread-safe, but only the indexing thread chunks, so one per
    language is enough; the lock only guards creation.
    """
    spec = SPECS.get(language)
    if spec is None:
        return None
    with _parsers_lock:
        if spec.grammar not in _parsers:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Language(path, name) FutureWarning
                try:
                    _parsers[spec.grammar] = (_standalone_parser(spec) if spec.module
                                              else _wheel_parser(spec.grammar))
                except Exception as exc:  # a grammar missing or built for another ABI
                    log.info("no %s grammar (%s): its files are indexed as line windows",
                             spec.name, exc)
                    _parsers[spec.grammar] = None
                    _grammar_errors[spec.grammar] = f"{type(exc).__name__}: {exc}"
        return _parsers[spec.grammar]


def grammar_problems() -> dict[str, str]:
    """Language -> why its grammar does not load, for each LangSpec whose grammar
    fails; ``ragexctl doctor`` reports them (those files become line windows)."""
    return {name: _grammar_errors.get(spec.grammar, "not loadable")
            for name, spec in SPECS.items() if parser_for(name) is None}


def grammar_parser(grammar: str) -> Any | None:
    """A parser for a grammar of the wheel that no language is chunked by as such
    (JSON, for the positions of a notebook's cells: ``notebooks.py``), or None."""
    with _parsers_lock:
        if grammar not in _parsers:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    _parsers[grammar] = _wheel_parser(grammar)
                except Exception as exc:  # noqa: BLE001 - missing: the caller degrades
                    log.info("no %s grammar (%s)", grammar, exc)
                    _parsers[grammar] = None
        return _parsers[grammar]


def _wheel_parser(grammar: str) -> Any:
    from tree_sitter_languages import get_parser
    return get_parser(grammar)


def _standalone_parser(spec: LangSpec) -> Any:
    """A parser from a grammar wheel of its own (``tree_sitter_lua``).

    Those wheels hand out their ``TSLanguage*`` in a PyCapsule (the tree-sitter
    0.22+ convention) while tree-sitter 0.21's ``Language`` takes the address as an
    int, so the pointer is taken out of the capsule.  The module stays imported,
    which keeps the grammar's shared library, and so the pointer, alive.
    """
    import ctypes
    import importlib

    from tree_sitter import Language, Parser
    handle = importlib.import_module(spec.module).language()
    if not isinstance(handle, int):
        get = ctypes.pythonapi.PyCapsule_GetPointer
        get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
        handle = get(handle, b"tree_sitter.Language")
    parser = Parser()
    parser.set_language(Language(handle, spec.grammar))  # raises on an ABI it cannot read
    return parser


#: How people write each language's name (README, docs).
DISPLAY: dict[str, str] = {
    "python": "Python", "javascript": "JavaScript", "typescript": "TypeScript", "tsx": "TSX",
    "go": "Go", "rust": "Rust", "java": "Java", "c": "C", "cpp": "C++", "c_sharp": "C#",
    "ruby": "Ruby", "php": "PHP", "kotlin": "Kotlin", "scala": "Scala", "shell": "Bash",
    "haskell": "Haskell", "ocaml": "OCaml", "sql": "SQL", "hcl": "HCL/Terraform",
    "elixir": "Elixir", "julia": "Julia", "perl": "Perl", "elisp": "Emacs Lisp",
    "erlang": "Erlang", "lua": "Lua", "swift": "Swift", "zig": "Zig", "objc": "Objective-C",
    "r": "R", "elm": "Elm", "fortran": "Fortran", "fortran_fixed": "Fortran 77 (fixed form)",
    "commonlisp": "Common Lisp", "make": "Make",
    "markdown": "Markdown", "rst": "reStructuredText", "text": "plain text", "toml": "TOML",
    "yaml": "YAML", "json": "JSON", "ini": "INI", "html": "HTML", "css": "CSS", "xml": "XML",
    "proto": "Protocol Buffers", "vim": "Vim script", "docker": "Dockerfile", "cmake": "CMake",
    "jupyter": "Jupyter notebooks",
}

#: Files of cells rather than of one language (``notebooks.py``): definition-aware
#: through their cells' languages, with no LangSpec of their own.
CELL_FILES: dict[str, str] = {
    "jupyter": "each code cell by its kernel's language (Python), markdown cells as prose, "
               "on the `.ipynb`'s own lines; outputs are never read",
}

#: Grammars of ``tree_sitter_languages`` that no LangSpec uses, and why: they describe
#: data, markup or patterns rather than code with named definitions, or they are
#: replaced by a standalone grammar.  A test keeps this list and the wheel in step.
DECLINED_GRAMMARS: dict[str, str] = {
    "css": "style rules are selectors, not named definitions",
    "dockerfile": "build steps; a stage name is a label on a FROM line, not a definition",
    "dot": "graph data",
    "embedded_template": "ERB/EJS templates: markup with code fragments",
    "gomod": "a dependency list",
    "hack": "no Hack code ships in any package of the registries ragex can test against",
    "html": "markup",
    "jsdoc": "comments inside JavaScript, chunked with their function",
    "json": "data",
    "lua": "the wheel's Lua grammar parses nothing: Lua uses the tree-sitter-lua wheel",
    "markdown": "prose (windows are titled by their heading)",
    "ql": "no CodeQL code ships in any package of the registries ragex can test against",
    "regex": "pattern syntax",
    "rst": "prose",
    "sqlite": "a SQL dialect: .sql files use the sql grammar",
    "swift": "missing from the wheel's shared library: Swift uses the tree-sitter-swift wheel",
    "toml": "data", "tsq": "tree-sitter query patterns", "yaml": "data",
}


def languages_block() -> str:
    """The README's language list, made from the tables above so the two cannot
    disagree (tests/engine/test_real_code.py compares them)."""
    def files(lang: str) -> str:
        names = [e for e, n in EXTENSIONS.items() if n == lang]
        names += [f for f, n in FILENAMES.items() if n == lang]
        return " ".join(f"`{n}`" for n in names)

    aware = sorted([*SPECS, *CELL_FILES], key=lambda n: DISPLAY[n].lower())
    windows = sorted((n for n in known_languages() if n not in SPECS and n not in CELL_FILES),
                     key=lambda n: DISPLAY[n].lower())
    lines = ["Definition-aware chunks (tree-sitter: one chunk per function, method, class, "
             "type or module; methods know their class; `--mode symbol` finds them; "
             "extensions match in any case):", ""]
    for n in aware:
        extra = f" — from the `{SPECS[n].module.replace('_', '-')}` wheel (`[engine]` extra; " \
                "line windows without it)" if n in SPECS and SPECS[n].module else \
            (f": {CELL_FILES[n]}" if n in CELL_FILES else "")
        lines.append(f"- {DISPLAY[n]} ({files(n)}){extra}")
    lines += ["", "Line windows (40 lines, 10 overlapping) for everything else, including "
              + ", ".join(f"{DISPLAY[n]} ({files(n)})" for n in windows) + ".", ""]
    return "\n".join(lines)
