"""Typed per-operation arguments: decoded once, wrong shapes named by field.

These are the claims every process boundary relies on: a request that gets
past ``decode`` carries valid typed arguments, a bad one is a clear error that
names the field (never a command-line flag), and nothing a peer can send makes
a reply unsendable.
"""

from __future__ import annotations

import json

import pytest

from ragexd import vocabulary
from ragexd.engine.types import EngineError
from ragexd.protocol import (ARGS_BY_OP, PROTOCOL_TAG, ErrorCode, IndexArgs, LogsArgs, NoArgs,
                             Op, RagexError, RemoveArgs, Reply, Request, SearchArgs,
                             SimilarArgs, StopArgs, decode, encode, request_id_of)
from ragexd.protocol.args import LOG_LINES_MAX


def _decode_request(op: str, args: object = None, **envelope: object) -> Request:
    data = {"type": "request", "op": op, "id": "r1", **envelope}
    if args is not None:
        data["args"] = args
    message = decode([PROTOCOL_TAG, json.dumps(data).encode()])
    assert isinstance(message, Request)
    return message


def _error(op: str, args: object = None, **envelope: object) -> RagexError:
    with pytest.raises(RagexError) as info:
        _decode_request(op, args, **envelope)
    return info.value


def test_each_op_decodes_into_its_own_typed_arguments():
    search = _decode_request("search", {"query": "q", "limit": 3, "future_field": 1})
    assert search.args_as(SearchArgs) == SearchArgs(query="q", limit=3)
    assert _decode_request("index", {"rebuild": True}).params == IndexArgs(rebuild=True)
    assert _decode_request("stop", {"all": True}).params == StopArgs(all=True)
    assert _decode_request("rm", {"target": "/x"}).params == RemoveArgs(target="/x")
    assert _decode_request("logs", {"target": "ragexd", "lines": 20}).params == \
        LogsArgs(target=None, lines=20)
    assert _decode_request("ping").params == NoArgs()
    assert _decode_request("similar", {"path": "./a//b.py", "line": 3}).params == \
        SimilarArgs(path="./a//b.py", line=3)
    assert _decode_request("similar", {"path": "./a//b.py", "line": 3}).args_as(
        SimilarArgs).clean_path == "a/b.py"
    assert set(ARGS_BY_OP) == {Op.SEARCH, Op.SIMILAR, Op.INDEX, Op.STOP, Op.REMOVE, Op.LOGS,
                               Op.EXPORT, Op.IMPORT}
    with pytest.raises(TypeError):
        search.args_as(IndexArgs)


def test_wire_form_is_unchanged_by_typing():
    # Peers in other languages see the same JSON: args stays a plain object.
    request = Request(Op.SEARCH, args=SearchArgs(query="q").to_wire(), project="/p", id="a")
    wire = json.loads(encode(request)[1])
    assert wire == {"type": "request", "op": "search", "id": "a", "project": "/p",
                    "client_version": "", "timeout": None,
                    "args": {"query": "q", "mode": "auto", "limit": 10, "paths": [],
                             "languages": [], "auto_index": False}}


@pytest.mark.parametrize("op, args, field, code", [
    ("search", {"query": "q", "limit": 0}, "limit", ErrorCode.BAD_QUERY),
    ("search", {"query": "q", "limit": True}, "limit", ErrorCode.BAD_QUERY),
    ("search", {"query": "q", "mode": "psychic"}, "mode", ErrorCode.BAD_QUERY),
    ("search", {"query": "   "}, "query", ErrorCode.BAD_QUERY),
    ("search", {"limit": 3}, "query", ErrorCode.BAD_QUERY),
    ("search", {"query": "x" * (vocabulary.MAX_QUERY_BYTES + 1)}, "query", ErrorCode.TOO_LARGE),
    ("search", {"query": "q", "paths": "src/"}, "paths", ErrorCode.BAD_QUERY),
    ("search", {"query": "q", "auto_index": "yes"}, "auto_index", ErrorCode.BAD_REQUEST),
    ("index", {"rebuild": "no"}, "rebuild", ErrorCode.BAD_REQUEST),
    ("index", {"paths": [1, 2]}, "paths", ErrorCode.BAD_REQUEST),
    ("index", {"named": "../etc"}, "named", ErrorCode.BAD_REQUEST),
    ("index", {"named": "/etc/passwd"}, "named", ErrorCode.BAD_REQUEST),
    ("index", {"named": 3}, "named", ErrorCode.BAD_REQUEST),
    ("stop", {"all": 1}, "all", ErrorCode.BAD_REQUEST),
    ("rm", {"target": 7}, "target", ErrorCode.BAD_REQUEST),
    ("rm", {"target": "/tmp/x\0y"}, "target", ErrorCode.BAD_REQUEST),
    ("logs", {"lines": "many"}, "lines", ErrorCode.BAD_REQUEST),
    ("logs", {"lines": float("inf")}, "lines", ErrorCode.BAD_REQUEST),
    ("logs", {"target": "/tmp/x\0y"}, "target", ErrorCode.BAD_REQUEST),
    ("similar", {"line": 3}, "path", ErrorCode.BAD_QUERY),
    ("similar", {"path": "a.py"}, "line", ErrorCode.BAD_QUERY),
    ("similar", {"path": "a.py", "line": 0}, "line", ErrorCode.BAD_QUERY),
    ("similar", {"path": "a.py", "line": True}, "line", ErrorCode.BAD_QUERY),
    ("similar", {"path": "a.py", "line": "7"}, "line", ErrorCode.BAD_QUERY),
    ("similar", {"path": "../etc/passwd", "line": 1}, "path", ErrorCode.PATH_OUTSIDE_PROJECT),
    ("similar", {"path": "/etc/passwd", "line": 1}, "path", ErrorCode.PATH_OUTSIDE_PROJECT),
    ("similar", {"path": "a.py", "line": 1, "limit": 0}, "limit", ErrorCode.BAD_QUERY),
    ("similar", {"path": "a\0.py", "line": 1}, "path", ErrorCode.BAD_REQUEST),
])
def test_bad_arguments_are_errors_naming_the_field_not_a_flag(op, args, field, code):
    exc = _error(op, args)
    assert exc.code is code and exc.detail["field"] == field, exc.message
    assert "--" not in exc.message, exc.message


def test_bad_envelopes_are_bad_requests_naming_the_field():
    assert _error("status", project="/tmp/x\0y").detail["field"] == "project"
    assert _error("ping", id="a\0b").detail["field"] == "id"
    assert _error("ping", id="").detail["field"] == "id"
    assert _error("ping", timeout=-1).detail["field"] == "timeout"
    assert _error("ping", timeout=True).detail["field"] == "timeout"
    assert _error("search", {"query": "\udfff"}).code is ErrorCode.BAD_REQUEST


def test_logs_lines_are_clamped_to_the_maximum():
    assert _decode_request("logs", {"lines": 10**12}).args_as(LogsArgs).lines == LOG_LINES_MAX
    assert _decode_request("logs", {"lines": -5}).args_as(LogsArgs).lines == 0


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"type":"request","op":"ping","id":"n1","timeout":' + b"9" * 5000 + b"}",
    b'{"type":"request","op":"ping","id":"\\ud800"}',
])
def test_undecodable_bodies_are_bad_requests(body):
    with pytest.raises(RagexError) as info:
        decode([PROTOCOL_TAG, body])
    assert info.value.code is ErrorCode.BAD_REQUEST
    assert request_id_of([PROTOCOL_TAG, body]) == ""   # nothing unsendable is echoed


def test_a_reply_holding_undecodable_file_name_bytes_still_encodes_and_round_trips():
    name = b"caf\xe9.py".decode("utf-8", "surrogateescape")   # a Latin-1 file name
    frames = encode(Reply.success("a", {"hits": [{"path": name}]}))
    frames[1].decode("ascii")
    again = decode(frames)
    assert isinstance(again, Reply) and again.result == {"hits": [{"path": name}]}


def test_protocol_and_engine_refuse_the_same_queries_with_the_same_sentence():
    from ragexd.engine.search import validate_text

    for text in ("", "x" * (vocabulary.MAX_QUERY_BYTES + 1), "a\0b"):
        with pytest.raises(RagexError) as wire:
            SearchArgs(query=text).validate()
        with pytest.raises(EngineError) as engine:
            validate_text(text)
        assert (wire.value.code.value, wire.value.message) == \
            (engine.value.code, engine.value.message)


def test_an_engine_error_passes_into_a_wire_error_as_its_code_message_and_detail():
    # the one shape of every ragex error (vocabulary.CodedError): an engine error's
    # str code becomes the wire's ErrorCode, so the reply encodes
    exc = EngineError("index_unwritable", "cannot write the index", path="/x")
    wire = RagexError(exc.code, exc.message, **exc.detail)
    assert wire.code is ErrorCode.INDEX_UNWRITABLE
    assert wire.info.to_wire() == {"code": "index_unwritable",
                                   "message": "cannot write the index",
                                   "detail": {"path": "/x"}}
    # a code the protocol does not know is a bug: sent as internal, sentence kept
    odd = RagexError("no_such_code", "what happened")
    assert odd.info.to_wire()["code"] == "internal"
    assert odd.message == "what happened"
