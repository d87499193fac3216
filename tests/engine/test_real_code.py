"""The grammars added beyond the first dozen, on real code and on their own constructs.

``data/real_code`` holds small files copied from packages of the registries (npm,
PyPI, Debian; sources and licences in its SOURCES.md): each must be cut at the
definitions a person sees in it, with the definition line after attributes and
type annotations, and a symbol search over an index of them must find each
language's functions and types.  Then the table itself: every language with a
LangSpec loads its grammar and finds a definition on its sample; every grammar the
``tree_sitter_languages`` wheel ships is either used or declined with a reason;
a missing standalone grammar wheel degrades to line windows; the README's language
list is the table's.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import pytest

from ragexd.engine import Engine, SearchQuery
from ragexd.engine import languages as L
from ragexd.engine.chunking import chunk_file

from tests.engine.test_chunking import MORE_LANGUAGES, SAMPLES

DATA = Path(__file__).parent / "data" / "real_code"
README = Path(__file__).resolve().parents[2] / "README.md"

Def = tuple[str, str, str, int, int]   # kind, parent, name, start (span), line (definition's own)

#: language -> (file, number of definitions, definitions that must be among them)
REAL: dict[str, tuple[str, int, list[Def]]] = {
    "lua": ("inspect.lua", 24, [
        ("function", "", "smartQuote", 38, 38),
        ("function", "", "copySequence", 149, 149),       # copySequence = function(s)
        ("method", "Inspector", "putTable", 238, 238),    # function Inspector:putTable(t)
        ("method", "inspect", "inspect", 311, 311)]),     # function inspect.inspect(...)
    "swift": ("HapticsPlugin.swift", 7, [
        ("class", "", "HapticsPlugin", 3, 4),             # @objc(HapticsPlugin) on line 3
        ("method", "HapticsPlugin", "impact", 17, 17),
        ("method", "HapticsPlugin", "vibrate", 68, 68)]),
    "zig": ("mem.zig", 6, [
        ("struct", "", "PyMemAllocator", 19, 19),         # pub const PyMemAllocator = struct {
        ("method", "PyMemAllocator", "alloc", 34, 34),
        ("method", "PyMemAllocator", "free", 120, 120)]),
    "objc": ("DeviceUID.m", 18, [
        ("class", "", "DeviceUID", 9, 9),                 # @interface DeviceUID ()
        ("class", "", "DeviceUID", 17, 17),               # @implementation DeviceUID
        ("method", "DeviceUID", "saveIfNeed", 76, 76),
        ("method", "DeviceUID", "setValue:forKeychainKey:inService:", 104, 104)]),
    "r": ("tradeoffs.R", 6, [
        ("function", "", "fail", 9, 9),
        ("function", "", "factory", 85, 85),
        ("function", "", "fn", 117, 117)]),
    "elm": ("Text.elm", 35, [
        ("type", "", "Color", 39, 39),
        ("function", "", "render", 62, 63),               # after `render : UseColor -> ...`
        ("function", "", "colorizeForeground", 243, 244)]),
    "fortran": ("foo90.f90", 9, [
        ("module", "", "f90_return_real", 1, 1),
        ("method", "f90_return_real", "t0", 3, 3),
        ("method", "f90_return_real", "sd", 42, 42)]),
    "fortran_fixed": ("foo.f", 8, [
        ("function", "", "t", 1, 1),
        ("function", "", "string_callback", 28, 28),
        ("function", "", "hidden_callback2", 57, 57)]),
    "commonlisp": ("conditions.lisp", 11, [
        ("function", "", "required-argument", 3, 3),
        ("class", "", "simple-reader-error", 21, 21),     # (define-condition ...)
        ("function", "", "unwind-protect-case", 56, 56)]),  # (defmacro ...)
    "make": ("Makefile", 3, [
        ("rule", "", "all", 19, 19),
        ("rule", "", "clean", 24, 24)]),
    "elisp": ("ninja-mode.el", 1, [
        ("function", "", "ninja-syntax-propertize", 48, 48)]),
    # the grammar reads no CREATE OPERATOR: error recovery folded the four of them
    # into the next CREATE FUNCTION, which then started at line 36, not 76
    "sql": ("citext--1.4--1.5.sql", 5, [
        ("function", "", "citext_pattern_lt", 16, 16),
        ("function", "", "citext_pattern_cmp", 76, 76)]),
}


@pytest.mark.parametrize("language", sorted(REAL))
def test_real_code_is_cut_at_its_definitions(language: str) -> None:
    name, count, expected = REAL[language]
    assert L.language_for(name) == language
    chunks = chunk_file(name, (DATA / name).read_text(), language)
    defs = [c for c in chunks if c.kind not in ("block", "window")]
    got = {(c.kind, c.parent, c.name, c.start, c.line) for c in defs}
    assert [e for e in expected if e not in got] == []
    assert len(defs) == count, sorted(got)
    for c in defs:
        assert c.start <= c.line <= c.end, c
        assert c.code.strip()
    # definitions never share a line with the next one (Fortran's `end` takes its newline)
    tops = sorted((c.start, c.end) for c in defs if not c.parent)
    assert all(a[1] < b[0] for a, b in zip(tops, tops[1:])), tops


#: The constructs real files above do not show, each language's own.
HAND: dict[str, tuple[str, str, list[tuple[str, str, str, int, int, int]]]] = {
    "swift": ("Shapes.swift", '''\
        import Foundation

        /// A point on the plane.
        struct Point {
            var x: Double
            init(x: Double) { self.x = x }
        }

        protocol Shape {
            func area() -> Double
        }

        @available(iOS 13, *)
        extension Point: Shape {
            func area() -> Double { return 0 }
        }

        enum Direction { case up, down }

        typealias Meters = Double
        ''', [("struct", "", "Point", 4, 7, 4), ("method", "Point", "init", 6, 6, 6),
              ("interface", "", "Shape", 9, 11, 9), ("method", "Shape", "area", 10, 10, 10),
              ("impl", "", "Point", 13, 16, 14), ("method", "Point", "area", 15, 15, 15),
              ("enum", "", "Direction", 18, 18, 18), ("type", "", "Meters", 20, 20, 20)]),
    "lua": ("mod.lua", '''\
        local M = {}

        -- Adds two numbers.
        M.add = function(a, b)
          return a + b
        end

        local handlers = {
          start = function(self) return true end,
        }

        function M:stop()
          return false
        end

        return M
        ''', [("method", "M", "add", 4, 6, 4), ("function", "", "start", 9, 9, 9),
              ("method", "M", "stop", 12, 14, 12)]),
    "zig": ("color.zig", '''\
        const std = @import("std");

        /// A colour channel.
        pub const Channel = enum { red, green, blue };

        pub fn clamp(x: i32) i32 {
            return if (x < 0) 0 else x;
        }
        ''', [("enum", "", "Channel", 4, 4, 4), ("function", "", "clamp", 6, 8, 6)]),
    "objc": ("Shape.m", '''\
        #import <Foundation/Foundation.h>

        @protocol Drawable
        - (void)draw;
        @end

        @interface Shape : NSObject <Drawable>
        - (double)areaWithScale:(double)s offset:(double)o;
        @end

        @implementation Shape
        - (void)draw {
        }
        - (double)areaWithScale:(double)s offset:(double)o {
          return s + o;
        }
        @end

        static int helper(int a) { return a; }
        ''', [("interface", "", "Drawable", 3, 5, 3), ("method", "Drawable", "draw", 4, 4, 4),
              ("class", "", "Shape", 7, 9, 7),
              ("method", "Shape", "areaWithScale:offset:", 8, 8, 8),
              ("class", "", "Shape", 11, 17, 11), ("method", "Shape", "draw", 12, 13, 12),
              ("method", "Shape", "areaWithScale:offset:", 14, 16, 14),
              ("function", "", "helper", 19, 19, 19)]),
    "r": ("stats.R", '''\
        # Mean of the finite values.
        finite_mean = function(x) {
          mean(x[is.finite(x)])
        }

        scale01 <- function(x) {
          rng <- range(x)
          (x - rng[1]) / (rng[2] - rng[1])
        }

        values <- sapply(1:3, function(i) i * 2)
        ''', [("function", "", "finite_mean", 2, 4, 2), ("function", "", "scale01", 6, 9, 6)]),
    "elm": ("Shapes.elm", '''\
        port module Shapes exposing (..)


        {-| A point. -}
        type alias Point =
            { x : Float, y : Float }


        port send : String -> Cmd msg


        {-| The distance from the origin. -}
        norm : Point -> Float
        norm p =
            sqrt (p.x * p.x + p.y * p.y)
        ''', [("type", "", "Point", 5, 6, 5), ("function", "", "send", 9, 9, 9),
              ("function", "", "norm", 13, 15, 14)]),
    "commonlisp": ("shapes.lisp", '''\
        (in-package :cl-user)

        (defstruct (point (:constructor make-point (x y)))
          x y)

        (defclass shape ()
          ((name :initarg :name)))

        (defgeneric area (shape)
          (:documentation "The area of SHAPE."))

        (defmethod area ((s shape))
          0)
        ''', [("struct", "", "point", 3, 4, 3), ("class", "", "shape", 6, 7, 6),
              ("function", "", "area", 9, 10, 9), ("function", "", "area", 12, 13, 12)]),
    "make": ("rules.mk", '''\
        CC ?= cc

        define compile
        $(CC) -c $(1)
        endef

        # Build everything.
        all: main.o
        \t$(call compile,main.c)

        .PHONY: all
        ''', [("function", "", "compile", 3, 5, 3), ("rule", "", "all", 8, 9, 8)]),
    "fortran": ("geo.f90", '''\
        program main
          implicit none
          print *, area(2.0)
        contains
          real function area(r)
            real, intent(in) :: r
            area = 3.14 * r * r
          end function area
        end program main

        module shapes
          type :: point
            real :: x, y
          end type point
          interface norm
            module procedure norm2
          end interface norm
        contains
          subroutine norm2(p)
            type(point) :: p
          end subroutine norm2
        end module shapes
        ''', [("module", "", "main", 1, 9, 1), ("method", "main", "area", 5, 8, 5),
              ("module", "", "shapes", 11, 22, 11), ("type", "shapes", "point", 12, 14, 12),
              ("interface", "shapes", "norm", 15, 17, 15),
              ("method", "shapes", "norm2", 19, 21, 19)]),
}


@pytest.mark.parametrize("language", sorted(HAND))
def test_each_new_language_defines_with_its_own_constructs(language: str) -> None:
    name, source, expected = HAND[language]
    assert L.language_for(name) == language
    got = [(c.kind, c.parent, c.name, c.start, c.end, c.line)
           for c in chunk_file(name, textwrap.dedent(source), language)
           if c.kind not in ("block", "window")]
    assert got == expected


def test_a_definition_the_grammar_cannot_finish_never_claims_the_statements_after_it() -> None:
    # PostgreSQL 15's system_functions.sql, lines 33-43: the grammar knows no
    # SQL-standard `RETURN expr` body, so lpad's node runs on over rpad as ERROR
    # children after its last readable part; rpad's lines must stay a block of
    # their own (searchable by meaning), not lpad's.
    source = textwrap.dedent('''\
        CREATE OR REPLACE FUNCTION lpad(text, integer)
         RETURNS text
         LANGUAGE sql
         IMMUTABLE PARALLEL SAFE STRICT COST 1
        RETURN lpad($1, $2, ' ');

        CREATE OR REPLACE FUNCTION rpad(text, integer)
         RETURNS text
         LANGUAGE sql
         IMMUTABLE PARALLEL SAFE STRICT COST 1
        RETURN rpad($1, $2, ' ');
        ''')
    chunks = chunk_file("f.sql", source, "sql")
    lpad = next(c for c in chunks if c.name == "lpad")
    assert (lpad.start, lpad.line) == (1, 1)
    assert lpad.end <= 5 and "rpad" not in lpad.code and "rpad" not in lpad.signature
    assert any("FUNCTION rpad" in c.code for c in chunks if c is not lpad)


def test_a_doc_comment_before_a_type_annotation_is_the_functions_doc() -> None:
    name, source, _ = HAND["elm"]
    norm = next(c for c in chunk_file(name, textwrap.dedent(source), "elm") if c.name == "norm")
    assert norm.doc == "The distance from the origin."


def test_a_lisp_docstring_is_the_definitions_doc() -> None:
    chunks = chunk_file("conditions.lisp", (DATA / "conditions.lisp").read_text(), "commonlisp")
    doc = {c.name: c.doc for c in chunks}
    assert doc["unwind-protect-case"].startswith("Like CL:UNWIND-PROTECT, but you can specify")
    assert doc["simple-parse-error"] == ""     # (defun ... (error ...)): no docstring
    source = '(defun f (x)\n  "Double X."\n  (* 2 x))\n\n(defun g () "just a value")\n'
    doc = {c.name: c.doc for c in chunk_file("a.el", source, "elisp")}
    assert doc == {"f": "Double X.", "g": ""}


def _sample(language: str) -> tuple[str, str]:
    """A file of ``language`` from any of the test tables: real code first."""
    if language in REAL:
        name = REAL[language][0]
        return name, (DATA / name).read_text()
    if language in HAND:
        return HAND[language][0], textwrap.dedent(HAND[language][1])
    if language in SAMPLES:
        return SAMPLES[language][0], textwrap.dedent(SAMPLES[language][1])
    return MORE_LANGUAGES[language]


@pytest.mark.parametrize("language", sorted(L.SPECS))
def test_every_language_in_the_table_loads_and_finds_a_definition(language: str) -> None:
    assert L.parser_for(language) is not None, f"the {language} grammar does not load"
    name, source = _sample(language)
    assert L.language_for(name) == language
    defs = [c for c in chunk_file(name, source, language) if c.kind not in ("block", "window")]
    assert defs and all(c.name for c in defs), defs


def _wheel_grammars() -> set[str]:
    """The grammars compiled into tree_sitter_languages' shared library, read from its
    exported ``tree_sitter_<name>`` symbols (scanner helpers left out)."""
    import tree_sitter_languages
    lib = Path(tree_sitter_languages.__file__).parent / "languages.so"
    names = set(re.findall(rb"\0tree_sitter_([a-z_]+)\0", lib.read_bytes()))
    return {n.decode() for n in names if b"external_scanner" not in n}


def test_every_grammar_of_the_wheel_is_used_or_declined_with_a_reason() -> None:
    shipped = _wheel_grammars()
    assert len(shipped) >= 45 and "python" in shipped
    used = {s.grammar for s in L.SPECS.values() if not s.module}
    assert used <= shipped, used - shipped
    accounted = used | set(L.DECLINED_GRAMMARS)
    assert sorted(shipped - accounted) == [], "a grammar neither used nor declined"
    assert all(reason.strip() for reason in L.DECLINED_GRAMMARS.values())
    # the standalone wheels stand in for what the wheel lacks or ships broken
    assert {s.name for s in L.SPECS.values() if s.module} == {"lua", "swift", "zig"}
    assert "swift" not in shipped   # why Swift needs its own wheel


def test_a_missing_grammar_wheel_degrades_to_line_windows(
        monkeypatch: pytest.MonkeyPatch) -> None:
    spec = L.LangSpec("lua", "lua_absent", module="tree_sitter_ragex_absent",
                      defs={"function_declaration": "function"})
    monkeypatch.setitem(L.SPECS, "lua", spec)
    source = (DATA / "inspect.lua").read_text()
    assert L.parser_for("lua") is None
    chunks = chunk_file("inspect.lua", source, "lua")
    assert chunks and {c.kind for c in chunks} == {"window"}
    assert chunks[-1].end == len(source.splitlines())


def test_the_readme_language_list_is_the_table() -> None:
    m = re.search(r"<!-- languages:begin -->\n(.*?)<!-- languages:end -->",
                  README.read_text(), re.S)
    assert m, "README.md has no languages block"
    assert m.group(1) == L.languages_block(), \
        "regenerate the README block from ragexd.engine.languages.languages_block()"
    for name in L.SPECS:
        assert L.DISPLAY[name] in m.group(1)


def test_ripgrep_language_filters_take_either_case_of_an_extension() -> None:
    assert {"*.r", "*.R"} <= set(L.extensions_for("r"))
    assert {"*.f90", "*.F90"} <= set(L.extensions_for("fortran"))
    assert L.language_for("x/tradeoffs.R") == L.language_for("x/a.r") == "r"


#: language -> (symbol query, file, the definition's line)
SYMBOLS = {
    "lua": ("Inspector.putTable", "inspect.lua", 238),
    "swift": ("HapticsPlugin", "HapticsPlugin.swift", 4),
    "zig": ("PyMemAllocator.alloc", "mem.zig", 34),
    "objc": ("setValue:forKeychainKey:inService:", "DeviceUID.m", 104),
    "r": ("factory", "tradeoffs.R", 85),
    "elm": ("colorizeForeground", "Text.elm", 244),
    "fortran": ("f90_return_real", "foo90.f90", 1),
    "fortran_fixed": ("string_callback_array", "foo.f", 38),
    "commonlisp": ("unwind-protect-case", "conditions.lisp", 56),
    "make": ("clean", "Makefile", 24),
    "elisp": ("ninja-syntax-propertize", "ninja-mode.el", 48),
}


@pytest.fixture(scope="module")
def real_index(scratch: Path):
    root = scratch / "real-code-tree"
    shutil.copytree(DATA, root)
    engine = Engine(root, scratch / "real-code-index")
    engine.index()
    yield engine
    engine.close()


@pytest.mark.parametrize("language", sorted(SYMBOLS))
def test_symbol_search_finds_each_languages_definitions(real_index, language: str) -> None:
    query, path, line = SYMBOLS[language]
    out = real_index.search(SearchQuery(query, mode="symbol", limit=5))
    top = out.hits[0]
    assert (top.path, top.line, top.language) == (path, line, language), out.hits
    narrowed = real_index.search(SearchQuery(query, mode="symbol", limit=5,
                                             languages=(language,)))
    assert narrowed.hits and all(h.language == language for h in narrowed.hits)


def test_each_standalone_grammar_is_pinned_in_the_engine_extra_and_the_constraints() -> None:
    import tomllib
    from importlib.metadata import version

    repo = README.parent
    engine = tomllib.loads((repo / "pyproject.toml").read_text())[
        "project"]["optional-dependencies"]["engine"]
    constraints = (repo / "packaging" / "constraints.txt").read_text().splitlines()
    for spec in (s for s in L.SPECS.values() if s.module):
        dist = spec.module.replace("_", "-")
        pin = f"{dist}=={version(dist)}"   # the installed one is the one tested here
        assert pin in engine and pin in constraints, pin
