"""Which language a file is, by its name: the one table of extensions and file
names, and the spellings ``--lang`` accepts.

Stdlib only and free of the engine, because two sides need it: the engine
(chunking, symbols, language filters) and the client's direct regex path
(``ragexctl/direct.py``), which turns ``--lang`` into ripgrep globs without a
round trip.  Whether a language also has a grammar is ``engine/languages.py``'s
business.
"""

from __future__ import annotations

#: Extension (lower case, with dot) -> engine language name.  Languages without a
#: LangSpec are indexed as line windows but still carry their name for filters.
EXTENSIONS: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".pyw": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".c++": "cpp", ".hpp": "cpp", ".hh": "cpp",
    ".hxx": "cpp", ".h++": "cpp", ".ipp": "cpp",
    ".cs": "c_sharp",
    ".rb": "ruby", ".rake": "ruby", ".gemspec": "ruby",
    ".php": "php",
    ".kt": "kotlin", ".kts": "kotlin",
    ".swift": "swift", ".scala": "scala", ".lua": "lua",
    ".sh": "shell", ".bash": "shell", ".zsh": "shell",
    ".md": "markdown", ".markdown": "markdown", ".rst": "rst", ".txt": "text",
    ".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json", ".ini": "ini",
    ".cfg": "ini", ".html": "html", ".htm": "html", ".css": "css", ".scss": "css",
    ".sql": "sql", ".xml": "xml", ".hs": "haskell", ".lhs": "haskell", ".ml": "ocaml",
    ".mli": "ocaml", ".tf": "hcl", ".hcl": "hcl", ".ex": "elixir", ".exs": "elixir",
    ".jl": "julia", ".pl": "perl", ".pm": "perl", ".erl": "erlang", ".hrl": "erlang", ".proto": "proto", ".el": "elisp", ".vim": "vim",
    ".zig": "zig", ".m": "objc", ".r": "r", ".elm": "elm",
    ".f90": "fortran", ".f95": "fortran", ".f03": "fortran", ".f08": "fortran",
    ".f": "fortran_fixed", ".for": "fortran_fixed", ".f77": "fortran_fixed",
    ".ipynb": "jupyter",
    ".lisp": "commonlisp", ".lsp": "commonlisp", ".asd": "commonlisp", ".mk": "make",
}
FILENAMES: dict[str, str] = {
    "Makefile": "make", "makefile": "make", "GNUmakefile": "make", "Dockerfile": "docker",
    "Rakefile": "ruby", "Gemfile": "ruby", "CMakeLists.txt": "cmake",
}

#: Accepted spellings in ``--lang`` filters.
ALIASES = {"py": "python", "js": "javascript", "ts": "typescript", "golang": "go",
           "rs": "rust", "c++": "cpp", "cxx": "cpp", "csharp": "c_sharp", "cs": "c_sharp",
           "c#": "c_sharp", "rb": "ruby", "kt": "kotlin", "sh": "shell", "bash": "shell",
           "md": "markdown", "yml": "yaml", "hs": "haskell", "ml": "ocaml", "tf": "hcl",
           "terraform": "hcl", "ex": "elixir", "jl": "julia", "pl": "perl", "erl": "erlang",
           "objective-c": "objc", "objectivec": "objc", "lisp": "commonlisp",
           "common-lisp": "commonlisp", "f90": "fortran", "f77": "fortran_fixed",
           "makefile": "make", "ipynb": "jupyter", "notebook": "jupyter"}


def language_for(path: str) -> str:
    """Engine language for a relative path; "text" when nothing better is known."""
    name = path.rpartition("/")[2]
    if name in FILENAMES:
        return FILENAMES[name]
    dot = name.rfind(".")   # PurePosixPath's suffix, without importing pathlib (the client's)
    return EXTENSIONS.get(name[dot:].lower() if 0 < dot < len(name) - 1 else "", "text")


def normalise_language(name: str) -> str:
    low = name.strip().lower()
    return ALIASES.get(low, low)


def extensions_for(language: str) -> list[str]:
    """Glob patterns (``*.py``) selecting a language's files, for ripgrep.  The upper
    case spelling too (``*.R``, ``*.F90``): ``language_for`` ignores the case, and
    ripgrep's globs do not."""
    globs = [g for ext, lang in EXTENSIONS.items() if lang == language
             for g in dict.fromkeys((f"*{ext}", f"*{ext.upper()}"))]
    globs += [name for name, lang in FILENAMES.items() if lang == language]
    return globs


def known_languages() -> list[str]:
    return sorted(set(EXTENSIONS.values()) | set(FILENAMES.values()))
