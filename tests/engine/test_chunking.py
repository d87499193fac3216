"""Every supported language cuts a small sample into the expected definitions.

Expected values are written by hand from the samples (1-based inclusive line
spans, decorators/exports included), so a grammar or walker regression shows up
as a precise diff.
"""

from __future__ import annotations

import textwrap

import pytest

from ragexd.engine.chunking import WINDOW_LINES, chunk_file
from ragexd.engine.languages import language_for

SAMPLES: dict[str, tuple[str, str, list[tuple[str, str, str, int, int]]]] = {
    "python": ("pkg/mod.py", '''\
        import os

        @decorator
        def top_level(a, b=1) -> int:
            """Add two numbers."""
            def inner():
                return a
            return a + b


        class Greeter(Base):
            """Says hello."""
            greeting = "hi"

            def greet(self, name):
                # leading comment
                return self.greeting + name

            async def later(self):
                pass
        ''', [("function", "top_level", "", 3, 8), ("function", "inner", "top_level", 6, 7),
              ("class", "Greeter", "", 11, 20), ("method", "greet", "Greeter", 15, 17),
              ("method", "later", "Greeter", 19, 20)]),
    "javascript": ("web/app.js", '''\
        // Adds numbers.
        function add(a, b) {
          return a + b;
        }

        class Cart {
          constructor() {
            this.items = [];
          }
          total() {
            return this.items.length;
          }
        }

        const double = (x) => {
          return x * 2;
        };
        ''', [("function", "add", "", 2, 4), ("class", "Cart", "", 6, 13),
              ("method", "constructor", "Cart", 7, 9), ("method", "total", "Cart", 10, 12),
              ("function", "double", "", 15, 17)]),
    "typescript": ("web/svc.ts", '''\
        export interface Shape {
          area(): number;
        }

        export class Circle implements Shape {
          constructor(private r: number) {}
          area(): number {
            return Math.PI * this.r ** 2;
          }
        }

        export function makeCircle(r: number): Circle {
          return new Circle(r);
        }
        ''', [("interface", "Shape", "", 1, 3), ("method", "area", "Shape", 2, 2),
              ("class", "Circle", "", 5, 10), ("method", "constructor", "Circle", 6, 6),
              ("method", "area", "Circle", 7, 9), ("function", "makeCircle", "", 12, 14)]),
    "tsx": ("web/view.tsx", '''\
        export function Button(props: { label: string }) {
          return <button>{props.label}</button>;
        }

        export class Panel extends React.Component {
          render() {
            return <div />;
          }
        }
        ''', [("function", "Button", "", 1, 3), ("class", "Panel", "", 5, 9),
              ("method", "render", "Panel", 6, 8)]),
    "go": ("srv/server.go", '''\
        package srv

        // Server serves.
        type Server struct {
        	addr string
        }

        func (s *Server) Start(port int) error {
        	return nil
        }

        func NewServer() *Server {
        	return &Server{}
        }
        ''', [("struct", "Server", "", 4, 6), ("method", "Start", "Server", 8, 10),
              ("function", "NewServer", "", 12, 14)]),
    "rust": ("src/lib.rs", '''\
        /// A point.
        pub struct Point {
            x: i32,
        }

        impl Point {
            pub fn new(x: i32) -> Self {
                Point { x }
            }
        }

        pub trait Shape {
            fn area(&self) -> f64;
        }

        pub fn origin() -> Point {
            Point::new(0)
        }
        ''', [("struct", "Point", "", 2, 4), ("method", "new", "Point", 7, 9),
              ("trait", "Shape", "", 12, 14), ("method", "area", "Shape", 13, 13),
              ("function", "origin", "", 16, 18)]),
    "java": ("src/Main.java", '''\
        package demo;

        /** The app. */
        public class Main {
            private int count;

            public Main() {
                count = 0;
            }

            public int increment(int by) {
                return count += by;
            }
        }
        ''', [("class", "Main", "", 4, 14), ("method", "Main", "Main", 7, 9),
              ("method", "increment", "Main", 11, 13)]),
    "c": ("src/util.c", '''\
        #include <stdio.h>

        struct point {
            int x;
        };

        /* Adds. */
        static int add(int a, int b) {
            return a + b;
        }

        char *name(void) {
            return "x";
        }
        ''', [("struct", "point", "", 3, 5), ("function", "add", "", 8, 10),
              ("function", "name", "", 12, 14)]),
    "cpp": ("src/shape.cpp", '''\
        namespace geo {
        class Shape {
        public:
            double area() const {
                return 0;
            }
            void draw();
        };
        }

        void geo::Shape::draw() {
        }

        template <typename T>
        T biggest(T a, T b) {
            return a > b ? a : b;
        }
        ''', [("class", "Shape", "", 2, 8), ("method", "area", "Shape", 4, 6),
              ("method", "draw", "Shape", 11, 12), ("function", "biggest", "", 14, 17)]),
    "c_sharp": ("src/Bank.cs", '''\
        namespace Bank {
            public class Account {
                public decimal Balance { get; set; }

                public Account() {
                }

                public void Deposit(decimal amount) {
                    Balance += amount;
                }
            }

            interface IAudit {
                void Log(string msg);
            }
        }
        ''', [("class", "Account", "", 2, 11), ("method", "Account", "Account", 5, 6),
              ("method", "Deposit", "Account", 8, 10), ("interface", "IAudit", "", 13, 15),
              ("method", "Log", "IAudit", 14, 14)]),
    "ruby": ("lib/shop.rb", '''\
        module Shop
          class Cart < Base
            def add(item)
              @items << item
            end

            def self.build
              new
            end
          end
        end

        def helper
          1
        end
        ''', [("module", "Shop", "", 1, 11), ("class", "Cart", "Shop", 2, 10),
              ("method", "add", "Cart", 3, 5), ("method", "build", "Cart", 7, 9),
              ("function", "helper", "", 13, 15)]),
    "php": ("src/user.php", '''\
        <?php
        function greet($name) {
            return "hi " . $name;
        }

        class User {
            public function name() {
                return $this->name;
            }
        }
        ''', [("function", "greet", "", 2, 4), ("class", "User", "", 6, 10),
              ("method", "name", "User", 7, 9)]),
    "kotlin": ("src/App.kt", '''\
        package app

        class Greeter(val name: String) {
            fun greet(): String {
                return "hi " + name
            }
        }

        interface Shape {
            fun area(): Double
        }

        fun main() {
            println(Greeter("x").greet())
        }
        ''', [("class", "Greeter", "", 3, 7), ("method", "greet", "Greeter", 4, 6),
              ("interface", "Shape", "", 9, 11), ("method", "area", "Shape", 10, 10),
              ("function", "main", "", 13, 15)]),
}


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_language_sample_chunks(language: str) -> None:
    path, src, expected = SAMPLES[language]
    assert language_for(path) == language
    chunks = chunk_file(path, textwrap.dedent(src), language)
    got = sorted((c.kind, c.name, c.parent, c.start, c.end) for c in chunks
                 if c.kind not in ("block", "window"))
    assert got == sorted(expected)


def test_python_details() -> None:
    path, src, _ = SAMPLES["python"]
    chunks = {c.name: c for c in chunk_file(path, textwrap.dedent(src), "python")}
    top = chunks["top_level"]
    assert top.signature == "def top_level(a, b=1) -> int"
    assert top.doc == "Add two numbers."
    cls = chunks["Greeter"]
    assert cls.members == ["greet", "later"]
    # a class chunk holds its header and attributes, not its methods' bodies
    assert "greeting = " in cls.code and "self.greeting + name" not in cls.code
    assert chunks["greet"].doc == ""  # the comment is inside the body, not before it
    blocks = [c for c in chunk_file(path, textwrap.dedent(src), "python") if c.kind == "block"]
    assert blocks == []  # a lone import line is not worth a chunk


def test_leading_comment_is_documentation() -> None:
    path, src, _ = SAMPLES["go"]
    chunks = {c.name: c for c in chunk_file(path, textwrap.dedent(src), "go")}
    assert chunks["Server"].doc == "Server serves."
    assert chunks["Server"].signature == "type Server struct"
    js = {c.name: c for c in chunk_file("a.js", textwrap.dedent(SAMPLES["javascript"][1]),
                                        "javascript")}
    assert js["add"].doc == "Adds numbers."


def test_module_level_code_becomes_blocks() -> None:
    src = "import os\nimport sys\n\nCONFIG = {'a': 1}\n\ndef f():\n    return 1\n\n" \
          "if __name__ == '__main__':\n    f()\n"
    chunks = chunk_file("m.py", src, "python")
    kinds = [(c.kind, c.start, c.end) for c in chunks]
    assert ("block", 1, 4) in kinds and ("function", 6, 7) in kinds and ("block", 9, 10) in kinds


def test_text_files_and_unparsable_code_use_windows() -> None:
    text = "\n".join(f"line {i}" for i in range(1, 101))
    chunks = chunk_file("notes.txt", text, "text")
    assert [c.kind for c in chunks] == ["window"] * len(chunks)
    assert chunks[0].start == 1 and chunks[0].end == WINDOW_LINES
    assert chunks[-1].end == 100
    # consecutive windows overlap so a match near a boundary keeps its context
    assert chunks[1].start <= chunks[0].end
    garbage = chunk_file("bad.py", "))) ((( ???\n" * 5, "python")
    assert garbage and all(c.kind == "window" for c in garbage)


def test_ids_are_deterministic_and_content_sensitive() -> None:
    src = "def f():\n    return 1\n"
    a = chunk_file("x.py", src, "python")
    b = chunk_file("x.py", src, "python")
    c = chunk_file("x.py", src.replace("1", "2"), "python")
    assert [x.id for x in a] == [x.id for x in b]
    assert a[0].id != c[0].id
    assert chunk_file("y.py", src, "python")[0].id != a[0].id


def test_empty_and_odd_input_never_raises() -> None:
    assert chunk_file("e.py", "", "python") == []
    chunk_file("weird.py", "\ufffd\ufffd def (:\n\0\n", "python")
    chunk_file("x.rs", "fn", "rust")


@pytest.mark.parametrize("path, language, separator", [
    ("ff.py", "python", "\x0c"), ("ls.js", "javascript", "\u2028"),
    ("cr.py", "python", "\r"), ("nel.go", "go", "\x85"), ("notes.md", "markdown", "\x0c")])
def test_line_separators_ripgrep_does_not_count_never_shift_the_chunks_below_them(
        path: str, language: str, separator: str) -> None:
    """Lines are numbered at \\n only, as ripgrep and tree-sitter number them: a form
    feed or a U+2028 inside a string must not move every later chunk's text one line
    up from the span it names."""
    body = {"python": "def f{i}(x):\n    s = 'a{sep}b'\n    return x + {i}\n{sep}\n",
            "javascript": "function f{i}(x) {{\n  const s = 'a{sep}b';\n  return x + {i};\n}}\n\n",
            "go": "func f{i}(x int) int {{\n\ts := \"a{sep}b\"\n\treturn x + {i}\n}}\n\n",
            "markdown": "# f{i}\n\ntext{sep} of section {i}\n\n"}[language]
    text = "".join(body.format(i=i, sep=separator) for i in range(30))
    if language == "go":
        text = "package p\n\n" + text
    numbered = text.split("\n")
    chunks = chunk_file(path, text, language)
    assert chunks
    for c in chunks:
        first = c.code.split("\n")[0].rstrip("\r")
        assert first == numbered[c.start - 1].rstrip("\r"), (c.kind, c.name, c.start, c.code)
    if language != "markdown":
        defs = [c for c in chunks if c.name.startswith("f")]
        assert len(defs) == 30 and all(f"x + {c.name[1:]}" in c.code for c in defs)


DEF_LINE_SAMPLES = [
    ("swift", "Store.swift", '''\
        final class Store {
            @discardableResult
            @objc(saveItems:)
            public func save(_ items: [String]) -> Bool {
                return true
            }
        }
        ''', "save", 2, 4),
    ("elm", "Main.elm", '''\
        module Main exposing (double)


        double :
            Int
            -> Int
        double x =
            x * 2
        ''', "double", 4, 7),
    ("python", "m.py", '''\
        class Split:
            @property
            @functools.lru_cache(
                maxsize=3,
            )
            def train_test_split(self, *arrays):
                return arrays
        ''', "train_test_split", 2, 6),
    ("java", "A.java", '''\
        public class A {
            @Override
            @Deprecated(
                since = "2")
            public void run() {
                return;
            }
        }
        ''', "run", 2, 5),
    ("c_sharp", "A.cs", '''\
        public class A {
            [Obsolete("no")]
            [HttpGet]
            public void Run() {
                return;
            }
        }
        ''', "Run", 2, 4),
    ("typescript", "a.ts", '''\
        export class A {
            @Input()
            @HostListener("click", ["$event"])
            onClick(e: Event): void {
                return;
            }
        }
        ''', "onClick", 2, 4),
    ("kotlin", "a.kt", '''\
        class A {
            @JvmStatic
            @Throws(IOException::class)
            fun load(path: String): String {
                return path
            }
        }
        ''', "load", 2, 4),
    ("cpp", "a.cpp", '''\
        [[nodiscard]]
        [[deprecated(
            "use g")]]
        int f(int a) {
            return a;
        }
        ''', "f", 1, 4),
    ("c", "a.c", '''\
        __attribute__((noinline))
        __attribute__((
            unused))
        static int f(void) {
            return 1;
        }
        ''', "f", 1, 4),
    ("rust", "a.rs", '''\
        impl S {
            #[inline]
            #[cfg(all(
                unix,
                feature = "x"))]
            pub fn go(&self) -> i32 {
                1
            }
        }
        ''', "go", 6, 6),
    ("scala", "A.scala", '''\
        class A {
          @inline
          @throws[Exception](
            "x")
          def f(x: Int): Int = x
        }
        ''', "f", 2, 5),
    ("php", "a.php", '''\
        <?php
        class A {
            #[Route(
                '/x'
            )]
            public function f() {}
        }
        ''', "f", 3, 6),
    ("typescript", "c.ts", '''\
        @Component({
          selector: 'app',
        })
        export class AppComponent {
          x = 1;
        }
        ''', "AppComponent", 1, 4),
]


@pytest.mark.parametrize("language,path,source,name,start,line", DEF_LINE_SAMPLES,
                         ids=[s[0] for s in DEF_LINE_SAMPLES])
def test_definition_line_is_after_decorators_and_annotations(
        language: str, path: str, source: str, name: str, start: int, line: int) -> None:
    chunks = chunk_file(path, textwrap.dedent(source), language)
    got = next(c for c in chunks if c.name == name)
    assert (got.start, got.line) == (start, line)


def test_javascript_assigned_functions_are_definitions() -> None:
    source = textwrap.dedent('''\
        /**
         * Proxy Router#use() to add middleware.
         */
        app.use = function use(fn) {
          var offset = 0;
          return offset;
        };
        exports.parse = (s) => {
          return s;
        };
        Foo.prototype.bar = function () { return 1; };
        ''')
    got = [(c.kind, c.name, c.parent, c.start, c.end, c.doc)
           for c in chunk_file("app.js", source, "javascript") if c.kind != "block"]
    assert got == [("method", "use", "app", 4, 7, "Proxy Router#use() to add middleware."),
                   ("function", "parse", "", 8, 10, ""),
                   ("method", "bar", "Foo", 11, 11, "")]


def test_a_function_given_several_names_by_a_chain_is_one_definition() -> None:
    """Express's `res.set = res.header = function header(...)` was no definition:
    its body was cut into blocks and neither name was a symbol."""
    source = textwrap.dedent('''\
        res.set =
        res.header = function header(field, val) {
          return this;
        };
        exports = module.exports = function createApplication() {
          return app;
        };
        a = b = 3;
        ''')
    got = [(c.kind, c.name, c.parent, c.start, c.end)
           for c in chunk_file("response.js", source, "javascript") if c.kind != "block"]
    assert got == [("method", "header", "res", 1, 4),
                   ("function", "createApplication", "", 5, 7)]
    assert "res.set =" in chunk_file("response.js", source, "javascript")[0].code


def test_a_named_function_exported_whole_is_found_by_its_own_name() -> None:
    # Express's middleware/query.js: `query` is what a person searches for
    source = textwrap.dedent('''\
        module.exports = function query(options) {
          return options;
        };
        ''')
    other = "exports = function parse(s) {\n  return s;\n};\nmodule.exports = function () {};\n"
    got = [(c.kind, c.name, c.parent) for c in chunk_file("q.js", source, "javascript")]
    assert got == [("function", "query", "")]
    got = [(c.kind, c.name, c.parent) for c in chunk_file("p.js", other, "javascript")]
    assert got == [("function", "parse", ""), ("function", "exports", "")]


# Grammars chunked by the generic definition rule (languages.py), on small real programs.
MORE_LANGUAGES: dict[str, tuple[str, str]] = {
"scala": ("a.scala", '''\
package util

/** Small helpers. */
object Util {
  /** Adds two numbers. */
  def add(a: Int, b: Int): Int = {
    a + b
  }
}

class Box(x: Int) {
  def get: Int = x
}

trait Shape {
  def area(): Double
}
'''),
"shell": ("deploy.sh", '''\
#!/bin/bash
set -e

# Print a greeting.
greet() {
  echo "hi $1"
}

function cleanup {
  rm -rf "$TMP"
}
'''),
"haskell": ("Main.hs", '''\
module Main where

-- | Add two numbers.
add :: Int -> Int -> Int
add a b = a + b

class Shape a where
  area :: a -> Double

data Point = Point Int Int
'''),
"ocaml": ("m.ml", '''\
(* Add two numbers. *)
let add a b =
  a + b

module Stack = struct
  let push x s = x :: s
end

type point = { x : int; y : int }
'''),
"sql": ("schema.sql", '''\
-- Users of the site.
CREATE TABLE users (
  id integer PRIMARY KEY,
  name text
);

CREATE FUNCTION add(a integer, b integer) RETURNS integer AS $$
  SELECT a + b;
$$ LANGUAGE SQL;
'''),
"hcl": ("main.tf", '''\
# The web server.
resource "aws_instance" "web" {
  ami           = "ami-123"
  instance_type = "t3.micro"
}

variable "region" {
  default = "eu-west-1"
}
'''),
"elixir": ("math.ex", '''\
defmodule Math do
  @moduledoc "Arithmetic."

  def add(a, b) do
    a + b
  end

  defp sub(a, b), do: a - b

  def pos(x) when x > 0 do
    x
  end
end
'''),
"julia": ("a.jl", '''\
module Geo

struct Point
    x::Float64
end

function norm(p::Point)
    sqrt(p.x^2)
end

end
'''),
"perl": ("a.pl", '''\
use strict;

# Add two numbers.
sub add {
    my ($a, $b) = @_;
    return $a + $b;
}
'''),
"erlang": ("m.erl", '''\
-module(m).
-export([add/2]).

add(A, B) ->
    A + B.
'''),
}
MORE_EXPECTED: dict[str, list[tuple[str, str, str, int, int]]] = {
    'scala': [('object', 'Util', '', 4, 9), ('method', 'add', 'Util', 6, 8), ('class', 'Box', '', 11, 13), ('method', 'get', 'Box', 12, 12), ('trait', 'Shape', '', 15, 17), ('method', 'area', 'Shape', 16, 16)],
    'shell': [('function', 'greet', '', 5, 7), ('function', 'cleanup', '', 9, 11)],
    'haskell': [('function', 'add', '', 5, 5), ('class', 'Shape', '', 7, 8), ('type', 'Point', '', 10, 10)],
    'ocaml': [('function', 'add', '', 2, 3), ('module', 'Stack', '', 5, 7), ('method', 'push', 'Stack', 6, 6), ('type', 'point', '', 9, 9)],
    'sql': [('type', 'users', '', 2, 5), ('function', 'add', '', 7, 9)],
    'hcl': [('object', 'resource aws_instance web', '', 2, 5), ('object', 'variable region', '', 7, 9)],
    'elixir': [('module', 'Math', '', 1, 13), ('method', 'add', 'Math', 4, 6), ('method', 'sub', 'Math', 8, 8), ('method', 'pos', 'Math', 10, 12)],
    'julia': [('module', 'Geo', '', 1, 11), ('struct', 'Point', 'Geo', 3, 5), ('method', 'norm', 'Geo', 7, 9)],
    'perl': [('function', 'add', '', 4, 7)],
    'erlang': [('function', 'add', '', 4, 5)],
}


@pytest.mark.parametrize("language", sorted(MORE_LANGUAGES))
def test_more_languages_have_definition_chunks(language: str) -> None:
    path, source = MORE_LANGUAGES[language]
    assert language_for(path) == language
    got = [(c.kind, c.name, c.parent, c.start, c.end)
           for c in chunk_file(path, source, language) if c.kind != "block"]
    assert got == MORE_EXPECTED[language]


DECORATED = '''\
@contextmanager
def augment_usage_errors(
    ctx: "Context", param: t.Optional["Parameter"] = None  # (a comment's bracket
) -> t.Iterator[None]:
    try:
        yield
    except BadParameter as e:
        raise
'''


def test_the_body_recipe_keeps_decorators_and_starts_the_body_after_the_whole_signature(
) -> None:
    from ragexd.engine.embedding import DEFAULT_VARIANT, context_text

    (chunk,) = [c for c in chunk_file("core.py", DECORATED, "python") if c.kind == "function"]
    before = context_text(chunk, "head+tail+path").splitlines()
    body = context_text(chunk, "body+path").splitlines()
    # the recipe to the sixth round drops the first line only: the decorator goes,
    # and the rest of the signature is read as body
    assert "@contextmanager" not in before and "def augment_usage_errors(" in before
    assert body[2] == "@contextmanager"
    assert body[4:] == ["try:", "yield", "except BadParameter as e:", "raise"]
    # the default since the seventh round reads it the same way, six lines and two
    assert context_text(chunk, DEFAULT_VARIANT) == context_text(chunk, "sig+head+tail+path")
    assert context_text(chunk, DEFAULT_VARIANT).splitlines()[2:] == body[2:]


#: scikit-learn's ``compute_class_weight`` (utils/class_weight.py, 1.9.1), its
#: decorator's argument lines cut short and its docstring out.
VALIDATED = '''\
@validate_params(
    {
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "classes": [np.ndarray],
    },
    prefer_skip_nested_validation=True,
)
def compute_class_weight(class_weight, *, classes, y, sample_weight=None):
    from sklearn.preprocessing import LabelEncoder

    xp, _, device_ = get_namespace_and_device(y, classes)
    unique_y = xp.unique_values(y)
    return weight
'''


def test_a_long_decorator_is_kept_as_its_first_lines_or_as_its_name_alone() -> None:
    from ragexd.engine.embedding import context_text

    (chunk,) = [c for c in chunk_file("utils/class_weight.py", VALIDATED, "python")
                if c.kind == "function"]
    lines = context_text(chunk, "def+head+tail+path").splitlines()
    assert lines[:3] == ["function compute class weight", "file utils class weight",
                         "@validate_params"]
    assert lines[4:] == ["from sklearn.preprocessing import LabelEncoder",
                         "xp, _, device_ = get_namespace_and_device(y, classes)",
                         "unique_y = xp.unique_values(y)", "return weight"]
    # the recipe that keeps the lines before the definition reads a bracket and
    # two parameter types where the decorator's name says what it is
    lines = context_text(chunk, "sig+head+tail+path").splitlines()
    assert lines[2:5] == ["@validate_params(", "{",
                          '"class_weight": [dict, StrOptions({"balanced"}), None],']
    # and the recipe before both read the decorator's arguments as the body
    assert "from sklearn.preprocessing import LabelEncoder" not in context_text(
        chunk, "head+tail+path")
    # a context manager's decorator is its own name already
    (cm,) = [c for c in chunk_file("core.py", DECORATED, "python") if c.kind == "function"]
    assert context_text(cm, "def+head+tail+path").splitlines()[2] == "@contextmanager"


LONG_BODY = "def f(x):\n" + "".join(f"    y{i} = x + {i}\n" for i in range(14)) + "    return y13\n"


def test_the_default_recipe_reads_a_long_bodys_first_six_lines_and_its_last_two() -> None:
    from ragexd.engine import embedding
    from ragexd.engine.embedding import context_text

    (long,) = [c for c in chunk_file("m.py", LONG_BODY, "python") if c.kind == "function"]
    (short,) = [c for c in chunk_file("m.py", "def g(x):\n    y = x\n    return y\n",
                                      "python") if c.kind == "function"]
    lines = context_text(long, "head+tail+path").splitlines()
    assert lines[-8:] == [f"y{i} = x + {i}" for i in range(6)] + ["y13 = x + 13", "return y13"]
    # the index's recipe unless RAGEX_CONTEXT_VARIANT names another: the same lines,
    # after the whole signature (one line here)
    assert embedding.DEFAULT_VARIANT == "sig+head+tail+path"
    assert context_text(long, embedding.DEFAULT_VARIANT) == "\n".join(lines)
    # the recipe before it read twelve lines from the top and never the return;
    # RAGEX_CONTEXT_VARIANT=context+path still re-runs it
    old = context_text(long, "context+path").splitlines()
    assert "return y13" not in old and old[-12:] == [f"y{i} = x + {i}" for i in range(12)]
    # a body that fits is read once, not its end a second time
    assert context_text(short, "head+tail+path") == context_text(short, "context+path")


def test_postgres_14_begin_atomic_bodies_end_their_function_and_the_next_are_named() -> None:
    """The SQL grammar knows no PostgreSQL 14 ``BEGIN ATOMIC ... END`` body: it ran
    the function on past its END, and every later CREATE FUNCTION or PROCEDURE of
    the file became error recovery inside it, with no chunk and no name.  Each is
    now its own definition on its own lines, a CASE's END inside a body does not
    end it, and the chunk keeps the file's own text."""
    text = textwrap.dedent('''\
        CREATE FUNCTION add_one(a integer) RETURNS integer
        LANGUAGE SQL
        BEGIN ATOMIC
          SELECT CASE WHEN a > 0 THEN a + 1 ELSE 0 END;
        END;

        CREATE OR REPLACE FUNCTION audit_insert(n text)
        RETURNS void
        LANGUAGE sql
        begin   atomic
          INSERT INTO t VALUES (1);
          INSERT INTO t VALUES (2);
        end;

        CREATE PROCEDURE do_it(x int)
        LANGUAGE SQL
        BEGIN ATOMIC
        END;

        CREATE FUNCTION plain(a int) RETURNS int AS $$ SELECT a $$ LANGUAGE sql;
        ''')
    got = [(c.kind, c.name, c.start, c.end, c.line) for c in chunk_file("f.sql", text, "sql")
           if c.kind == "function"]
    assert got == [("function", "add_one", 1, 5, 1), ("function", "audit_insert", 7, 13, 7),
                   ("function", "do_it", 15, 18, 15), ("function", "plain", 20, 20, 20)]
    add_one = next(c for c in chunk_file("f.sql", text, "sql") if c.name == "add_one")
    assert "BEGIN ATOMIC" in add_one.code and "$r$" not in add_one.code


def test_a_kotlin_annotation_class_after_an_inline_annotation_is_named_on_its_line() -> None:
    """After an annotation with arguments on its line, the Kotlin grammar reads
    ``annotation class Q`` (no constructor) as an expression: the class had no
    chunk and no symbol.  It is a class now, its annotations in its span."""
    text = textwrap.dedent('''\
        package x

        @Target(AnnotationTarget.FIELD) @Retention(AnnotationRetention.SOURCE) annotation class Q
        fun after() = 1
        object Holder {
            @Target(AnnotationTarget.CLASS)
            @Repeatable internal annotation class Tag
            val v = a infix b
        }
        ''')
    got = [(c.kind, c.name, c.parent, c.start, c.end, c.line)
           for c in chunk_file("a.kt", text, "kotlin") if c.kind not in ("block", "window")]
    assert got == [("class", "Q", "", 3, 3, 3), ("function", "after", "", 4, 4, 4),
                   ("object", "Holder", "", 5, 9, 5), ("class", "Tag", "Holder", 6, 7, 7)]
