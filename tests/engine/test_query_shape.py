"""Auto mode's guess of what a query is, and identifier splitting."""

from __future__ import annotations

import pytest

from ragexd.query_shape import is_code_token, shape, split_qualified
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
