"""Which language a file is, and how its tree-sitter grammar spells a definition.

The chunker is generic: it walks a syntax tree and cuts one chunk per node whose
type is listed here.  Adding a language is therefore a table entry, not code
(its extensions go in ``ragexd/filetypes.py``, which the client reads too).
Grammars come from ``tree_sitter_languages`` 1.10.2 (tree-sitter 0.21 API);
Swift is not usable from that wheel (its symbol is missing from the shared
library) and its Lua grammar parses nothing: both are indexed as line windows.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

from ..filetypes import (ALIASES, EXTENSIONS, FILENAMES, extensions_for,  # noqa: F401
                         known_languages, language_for, normalise_language)


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


CONTAINER_KINDS = frozenset({"class", "interface", "struct", "enum", "trait", "module",
                             "object", "record", "impl"})
FUNCTION_KINDS = frozenset({"function", "method"})
#: Kinds a symbol search returns first: real definitions.
DEFINITION_KINDS = ("class", "function", "method", "interface", "struct", "enum", "trait",
                    "module", "object", "record", "type")

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
        comment_types=("comment", "multiline_comment", "line_comment")),
    # More grammars of the wheel, by the same generic rule: the node types that define
    # functions, methods, classes, modules and types (checked on real code in
    # tests/engine/test_chunking.py).  Lua's grammar in the wheel parses nothing, Swift's
    # does not load: both stay line windows.
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
}

_parsers: dict[str, Any] = {}
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
                from tree_sitter_languages import get_parser
                try:
                    _parsers[spec.grammar] = get_parser(spec.grammar)
                except Exception:  # a grammar missing from the wheel
                    _parsers[spec.grammar] = None
        return _parsers[spec.grammar]
