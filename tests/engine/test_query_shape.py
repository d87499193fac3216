"""Auto mode's guess of what a query is, and identifier splitting."""

from __future__ import annotations

import pytest

from ragexd.query_shape import asks_for_usage, is_code_token, shape, split_qualified
from ragexd.engine.tokens import query_terms, split_identifier


@pytest.mark.parametrize("text,expected", [
    ("parse_config", "symbol"), ("HTTPClient", "symbol"), ("Message.get_payload", "symbol"),
    ("std::vector", "symbol"), ("get_payload()", "symbol"), ("decode", "symbol"),
    ("foo.*bar", "regex"), (r"^def \w+", "regex"), ("TODO|FIXME", "regex"), ("a+b", "regex"),
    ("--pre=sh", "regex"), (r"\bword\b", "regex"), ("import re$", "regex"),
    ("how are cookies parsed", "natural"), ("decode base64 text into bytes", "natural"),
    ("where is the config file read?", "natural"),
])
def test_shape(text: str, expected: str) -> None:
    assert shape(text) == expected


def test_identifier_helpers() -> None:
    assert split_identifier("get_HTTPResponse2") == ["get", "http", "response", "2"]
    assert split_identifier("parseConfigFile") == ["parse", "config", "file"]
    assert split_qualified("Message.get_payload()") == ("Message", "get_payload")
    assert split_qualified("ns::Foo::bar") == ("Foo", "bar")
    assert is_code_token("get_payload") and is_code_token("HTTPClient")
    assert is_code_token("os.path") and not is_code_token("cookies")
    assert query_terms("How does the parser decode base64 strings?") == \
        ["parser", "decode", "base64", "base", "64", "strings"]


@pytest.mark.parametrize("text,expected", [
    ("where is parse_config called with a timeout", True), ("who calls HTTPClient", True),
    ("which functions use Message.get_payload", True), ("usages of get_payload", True),
    ("callers of parse_config", True),
    # descriptions of what code does, as doc comments phrase them, are not usage questions
    ("Create a metadata proxy that uses mod_name in its warnings.", False),
    ("Handle cases where the ping(), pong(), or send() methods are called.", False),
    ("defines a boolSlice flag with specified name, default value, and usage string.", False),
    ("what does parse_config do with the timeout", False),
])
def test_which_questions_ask_where_something_is_used(text: str, expected: bool) -> None:
    assert asks_for_usage(text) is expected
