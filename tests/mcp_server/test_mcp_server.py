"""``ragexctl mcp`` driven by the MCP SDK's own stdio client, as an agent would.

Every session spawns a real ``ragexctl mcp --project P`` process; tool calls go
through a real ragexd to a real worker (real model, real index).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import anyio
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from ragexctl.mcp import render_status, search_args, similar_args
from ragexd.protocol import RagexError, SearchArgs, SimilarArgs
from tests.harness import make_project
from tests.harness.live import LiveRagex

COMPACT_BUDGET = 8_000


def server_params(live: LiveRagex, *args: str, cwd: Path | None = None,
                  env: dict[str, str] | None = None) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "ragexctl", "mcp", *args],
                                 env=env or live.env, cwd=str(cwd) if cwd else None)


@asynccontextmanager
async def session(live: LiveRagex, proj: Path | None, *, cwd: Path | None = None,
                  env: dict[str, str] | None = None) -> AsyncIterator[Client]:
    args = ("--project", str(proj)) if proj is not None else ()
    async with Client(server_params(live, *args, cwd=cwd, env=env),
                      read_timeout_seconds=180) as client:
        yield client


def text_of(result: Any) -> str:
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


def run(fn, *args: Any) -> Any:
    return anyio.run(fn, *args)


# --- tools -----------------------------------------------------------------------


def test_lists_the_five_tools(live: LiveRagex, proj: Path) -> None:
    async def main() -> Any:
        async with session(live, proj) as c:
            return (await c.list_tools()).tools, c.server_info, c.instructions

    tools, info, instructions = run(main)
    by_name = {t.name: t for t in tools}
    assert set(by_name) == {"search_code", "find_symbol", "find_similar", "index_status",
                            "reindex"}
    assert info is not None and info.name == "ragex"
    assert instructions and "search_code" in instructions
    schema = by_name["search_code"].input_schema
    assert schema["required"] == ["query"]
    assert set(schema["properties"]) == {"query", "mode", "limit", "paths", "languages",
                                         "detail"}
    assert by_name["find_symbol"].input_schema["required"] == ["name"]
    assert "rebuild" in by_name["reindex"].input_schema["properties"]
    assert by_name["find_similar"].input_schema["required"] == ["path", "line"]
    for name in ("search_code", "find_symbol", "find_similar", "index_status"):
        assert by_name[name].annotations.read_only_hint is True


def test_search_code_first_search_indexes_then_answers(live: LiveRagex, proj: Path) -> None:
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async def main() -> tuple[Any, Any, Any]:
        async with session(live, proj) as c:
            compact = await c.call_tool("search_code", {
                "query": "retry failed calls with exponential backoff", "limit": 5},
                progress_callback=on_progress)
            detail = await c.call_tool("search_code", {
                "query": "retry failed calls with exponential backoff", "limit": 1,
                "detail": True})
            many = await c.call_tool("search_code", {"query": "function", "limit": 200,
                                                     "mode": "hybrid"})
            return compact, detail, many

    compact, detail, many = run(main)
    assert not compact.is_error, text_of(compact)
    text = text_of(compact)
    lines = text.splitlines()
    # the first search indexed the project, or (on a slow machine) answered before
    # the index was complete, from keywords, and said how much its answer covers
    partial = "\nnote: coverage: " in text
    assert "note: indexed 5 files" in text or partial, text
    head = r"\d results? " if partial else r"5 results "
    assert re.match(head + r"\(mode (hybrid|semantic), \d+ ms\) in " + re.escape(str(proj)),
                    lines[0]), lines[0]
    # ... and said so while it ran, as MCP progress notifications
    assert progress and all(m and m.startswith("indexing: ") for _, _, m in progress), progress
    heads = [ln for ln in lines if re.match(r"\S+:\d+(-\d+)? ", ln)]
    assert heads and heads[0].startswith("net/retry.py:4-13 function retry_with_backoff (score "),\
        text
    # compact: at most 3 snippet lines per hit, then a "+N lines" marker
    block = lines[lines.index(heads[0]) + 1:]
    snippet = [ln for ln in block[:4] if ln.startswith("    ")]
    assert snippet[:3] == ["    def retry_with_backoff(fn, attempts=5):",
                           '        """Call fn, retrying failures with exponential backoff '
                           'between attempts."""',
                           "        delay = 0.5"], text
    assert snippet[3].startswith("    … (+"), text
    assert "raise RuntimeError" not in text
    # detail: the whole definition
    assert not detail.is_error
    assert 'raise RuntimeError("gave up")' in text_of(detail)
    # the output budget holds whatever the limit
    assert not many.is_error
    assert len(text_of(many)) <= COMPACT_BUDGET + 200


def test_search_code_modes_and_filters(live: LiveRagex, proj: Path) -> None:
    async def main() -> list[Any]:
        async with session(live, proj) as c:
            return [
                await c.call_tool("search_code", {"query": r"def \w+_title", "mode": "regex"}),
                await c.call_tool("search_code", {"query": "lowercase url slug",
                                                  "paths": ["billing.py"]}),
                await c.call_tool("search_code", {"query": "area of a circle",
                                                  "languages": ["python"], "limit": 2}),
            ]

    regex, filtered, lang = run(main)
    assert "text/slug.py:4 match in slugify_title (score" in text_of(regex), text_of(regex)
    assert "mode regex" in text_of(regex)
    assert "text/slug.py" not in text_of(filtered) and "billing.py" in text_of(filtered)
    assert "shapes.py" in text_of(lang)


def test_find_symbol(live: LiveRagex, proj: Path) -> None:
    async def main() -> tuple[Any, Any]:
        async with session(live, proj) as c:
            return (await c.call_tool("find_symbol", {"name": "Circle"}),
                    await c.call_tool("find_symbol", {"name": "no_such_symbol_anywhere"}))

    found, missing = run(main)
    assert not found.is_error
    text = text_of(found)
    assert text.splitlines()[0].startswith("1 definition (mode symbol"), text
    assert "shapes.py:4-12 class Circle (score" in text, text
    assert not missing.is_error
    assert text_of(missing).startswith("no definition named 'no_such_symbol_anywhere'")


def test_find_similar_lists_look_alikes_and_refuses_bad_locations(live: LiveRagex,
                                                                  proj: Path) -> None:
    async def main() -> tuple[Any, list[Any]]:
        async with session(live, proj) as c:
            await c.call_tool("search_code", {"query": "circle area"})   # indexed first
            found = await c.call_tool("find_similar", {"path": "shapes.py", "line": 11,
                                                       "limit": 3})
            bad = [await c.call_tool("find_similar", args) for args in (
                {"path": "shapes.py", "line": 0},
                {"path": "shapes.py", "line": 5000},
                {"path": "../outside.py", "line": 1},
                {"path": "/etc/hostname", "line": 1},
                {"path": "generated/x.py", "line": 1},
                {"path": "", "line": 1},
                {"path": "shapes.py", "line": 1, "limit": 0},
                {"path": "shapes\0.py", "line": 1})]
            return found, bad

    found, bad = run(main)
    assert not found.is_error, text_of(found)
    text = text_of(found)
    assert text.startswith("3 similar chunks (mode similar"), text
    assert "method Circle.area" not in text   # the chunk itself is left out
    # the protocol's own sentences (SimilarArgs), naming the tool's parameters
    sentences = ["'line' must be a line number", "past the end of shapes.py",
                 "path_outside_project", "path_outside_project", "not_found",
                 "needs a 'path' inside the project", "'limit' must be an integer",
                 "'path' contains a NUL byte"]
    for result, sentence in zip(bad, sentences):
        assert result.is_error and sentence in text_of(result), text_of(result)


@pytest.mark.parametrize("args", [
    {"path": "shapes.py", "line": 0}, {"path": "shapes.py", "line": True},
    {"path": "", "line": 1}, {"path": "shapes.py", "line": 1, "limit": 0},
    {"path": "shapes.py", "line": 1, "paths": [3]},
])
def test_find_similar_refuses_what_the_wire_refuses_with_the_same_sentence(
        tmp_path: Path, args: dict[str, Any]) -> None:
    # one set of checks: the tool's arguments are SimilarArgs, validated by themselves
    with pytest.raises(RagexError) as tool:
        similar_args(args["path"], args["line"], args.get("limit", 10), args.get("paths"),
                     None, root=str(tmp_path))
    with pytest.raises(RagexError) as wire:
        SimilarArgs.from_wire(args)
    assert (tool.value.code, tool.value.message) == (wire.value.code, wire.value.message)


@pytest.mark.parametrize("args", [
    {"query": " "}, {"query": "x", "mode": "telepathic"}, {"query": "x", "limit": 0},
    {"query": "x", "limit": 5000}, {"query": "x", "languages": [None]},
])
def test_search_code_refuses_what_the_wire_refuses_with_the_same_sentence(
        args: dict[str, Any]) -> None:
    with pytest.raises(RagexError) as tool:
        search_args(args["query"], args.get("mode", "auto"), args.get("limit", 10), None,
                    args.get("languages"))
    with pytest.raises(RagexError) as wire:
        SearchArgs.from_wire(args)
    assert (tool.value.code, tool.value.message) == (wire.value.code, wire.value.message)


def test_bad_arguments_are_clean_tool_errors(live: LiveRagex, proj: Path) -> None:
    bad = [
        ("search_code", {"query": "   "}, "the query is empty"),
        ("search_code", {"query": "x", "mode": "telepathic"}, "unknown search mode 'telepathic'"),
        ("search_code", {"query": "x", "limit": 0}, "'limit' must be an integer between 1 and"),
        ("search_code", {"query": "x", "limit": 5000}, "'limit' must be an integer between 1 and"),
        ("search_code", {"query": "x", "limit": "many"}, "'limit' must be an integer, not 'many'"),
        ("search_code", {"query": "(unclosed", "mode": "regex"}, "invalid_regex"),
        ("search_code", {"query": "x" * 9000}, "too_large"),
        ("search_code", {}, "'query' is required"),
        ("find_symbol", {"name": ""}, "the symbol name is empty"),
        ("search_code", {"query": "x", "paths": ["/etc/**"]}, "ragex error"),
        # wrong JSON types: the tool schema's refusal, in one sentence like the rest
        # (was four lines of pydantic: type codes and an errors.pydantic.dev URL)
        ("search_code", {"query": 123}, "'query' must be a string, not 123"),
        ("find_symbol", {"name": "x", "limit": 1e300}, "'limit' must be an integer"),
        ("find_symbol", {"name": "x", "detail": "very"}, "'detail' must be true or false"),
        ("find_similar", {"path": "shapes.py"}, "'line' is required"),
        ("search_code", {"query": "x", "languages": {"a": 1}}, "'languages' must be"),
    ]

    async def main() -> tuple[list[Any], Any, Any]:
        async with session(live, proj) as c:
            results = [await c.call_tool(tool, args) for tool, args, _ in bad]
            # the server is still alive and well after all that
            ok = await c.call_tool("find_symbol", {"name": "slugify_title"})
            # one glob as a string, as models send it, is the list of that one glob
            one = await c.call_tool("find_symbol", {"name": "slugify_title", "paths": "text/*"})
            return results, ok, one

    results, ok, one = run(main)
    for (tool, args, sentence), result in zip(bad, results):
        text = text_of(result)
        assert result.is_error, (tool, args, text)
        assert sentence in text, (tool, args, text)
        assert text.startswith("ragex error ["), (tool, args, text)
        assert "pydantic" not in text, (tool, args, text)
    assert [r for r in results[:4] if "ragex error [bad_query]" not in text_of(r)] == []
    assert not ok.is_error and "text/slug.py" in text_of(ok)
    assert not one.is_error and "text/slug.py" in text_of(one), text_of(one)


def test_index_status_and_reindex(live: LiveRagex, proj: Path) -> None:
    async def main() -> tuple[Any, Any]:
        async with session(live, proj) as c:
            await c.call_tool("find_symbol", {"name": "Circle"})  # indexed, worker up
            live.wait_watching(proj)
            return (await c.call_tool("index_status", {}),
                    await c.call_tool("reindex", {}))

    status, reindex = run(main)
    assert not status.is_error
    text = text_of(status)
    assert f"project: {proj}" in text
    assert re.search(r"index: ready — complete; 5 files, \d+ chunks", text), text
    assert re.search(r"last update: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(", text), text
    assert "pending: 0 files not yet fully indexed" in text
    assert "watching for changes: yes" in text
    assert not reindex.is_error
    assert re.match(r"indexed 0 files \(5 unchanged, 0 removed\), \d+ chunks in", text_of(reindex))


def test_index_status_names_the_files_the_index_leaves_out() -> None:
    """An agent cannot run `ragexctl status`: index_status says what is left out and why."""
    index = {"state": "ready", "files": 3, "chunks": 9, "pending_files": 0, "skipped": 12,
             "skipped_files": [{"path": f"gen/f{i}.js", "reason": "looks minified"}
                               for i in range(12)]}
    text = render_status({"index": index}, root="/p")
    assert "left out of the index: 12 files: gen/f0.js (looks minified);" in text, text
    assert "gen/f9.js" in text and "gen/f10.js" not in text and text.count("…") == 1, text
    assert "left out" not in render_status({"index": dict(index, skipped=0)}, root="/p")


def test_two_sessions_share_one_worker(live: LiveRagex) -> None:
    """Two agents start at once on a project with no worker yet: ragexd starts ONE
    worker (one model load) and both sessions talk to it."""
    proj = make_project(Path(tempfile.mkdtemp(prefix="rx-proj-", dir="/tmp")))
    assert not [w for w in live.workers() if w["root"] == str(proj)]
    seen: dict[str, str] = {}

    async def one(tag: str, started: anyio.Event, other: anyio.Event) -> None:
        async with session(live, proj) as c:
            started.set()
            await other.wait()  # both sessions are open at the same time
            r = await c.call_tool("search_code", {"query": "great-circle distance on a sphere",
                                                  "mode": "semantic"})
            assert not r.is_error, text_of(r)
            seen[tag] = text_of(await c.call_tool("index_status", {}))

    async def main() -> None:
        a, b = anyio.Event(), anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(one, "a", a, b)
            tg.start_soon(one, "b", b, a)

    try:
        run(main)
    finally:
        shutil.rmtree(proj, ignore_errors=True)
    pids = {tag: re.search(r"worker pid (\d+)", text).group(1) for tag, text in seen.items()}
    workers = [w for w in live.workers(proj) if w["root"] == str(proj)]
    assert len(workers) == 1, workers
    assert pids["a"] == pids["b"] == str(workers[0]["pid"]), (pids, workers)
    # one worker process for the project, and it loaded the model once
    procs = [p for p in _cmdlines() if "ragexd.worker" in p and str(proj) in p]
    assert len(procs) == 1, procs
    log_text = Path(workers[0]["log_path"]).read_text(errors="replace")
    assert len(re.findall(r"model loaded in", log_text)) == 1, log_text[-2000:]


def test_without_the_daemon_a_one_shot_worker_answers(live: LiveRagex, proj: Path) -> None:
    """RAGEX_DAEMON_ENABLED=false: each call runs a one-shot worker process; the
    MCP server itself still never loads the engine."""
    live.index(proj)
    before = {w["project_id"] for w in live.workers()}
    env = {**live.env, "RAGEX_DAEMON_ENABLED": "false"}

    async def main() -> Any:
        async with session(live, proj, env=env) as c:
            return await c.call_tool("search_code", {"query": r"def slugify_\w+",
                                                     "mode": "regex"})

    result = run(main)
    assert not result.is_error, text_of(result)
    assert "text/slug.py:4 match in slugify_title" in text_of(result)
    assert {w["project_id"] for w in live.workers()} == before


# --- the process itself ---------------------------------------------------------------


def test_stdout_carries_only_the_protocol(live: LiveRagex, proj: Path) -> None:
    """Raw JSON-RPC over the pipes: every byte on stdout must be a protocol message."""
    from mcp_types.version import LATEST_HANDSHAKE_VERSION

    proc = subprocess.Popen([sys.executable, "-m", "ragexctl", "mcp", "--project", str(proj)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**live.env, "RAGEX_LOG_LEVEL": "debug"})
    assert proc.stdin and proc.stdout
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": LATEST_HANDSHAKE_VERSION, "capabilities": {},
                    "clientInfo": {"name": "raw-test", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "search_code", "arguments": {"query": "invoice tax"}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
         "params": {"name": "search_code", "arguments": {"query": ""}}},
    ]
    lines: list[str] = []
    try:
        for msg in messages:
            proc.stdin.write((json.dumps(msg) + "\n").encode())
            proc.stdin.flush()
            if "id" in msg:
                while True:
                    line = proc.stdout.readline().decode()
                    assert line, "the server closed stdout"
                    lines.append(line)
                    if json.loads(line).get("id") == msg["id"]:
                        break
        rest, err = proc.communicate(timeout=20)  # closes stdin: the session ends
        lines.extend(rest.decode().splitlines(keepends=True))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    parsed = [json.loads(line) for line in lines if line.strip()]
    assert all(m.get("jsonrpc") == "2.0" for m in parsed)
    by_id = {m.get("id"): m for m in parsed}
    assert "billing.py" in by_id[2]["result"]["content"][0]["text"]
    assert by_id[3]["result"]["isError"] is True
    assert "the query is empty" in by_id[3]["result"]["content"][0]["text"]
    assert err, "logs are expected on stderr at debug level"


def test_every_line_an_agent_sends_is_answered_even_one_that_is_no_message(
        live: LiveRagex, proj: Path) -> None:
    """Invalid JSON, a JSON-RPC batch (MCP dropped them; older clients send them) and
    a request of the wrong shape were dropped by the SDK without a word: the client
    waited for its own timeout.  Each now gets JSON-RPC's error answer (with the
    request's id when it has one), and 60 calls sent at once are all answered."""
    import select

    from mcp_types.version import LATEST_HANDSHAKE_VERSION

    proc = subprocess.Popen([sys.executable, "-m", "ragexctl", "mcp", "--project", str(proj)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=live.env)
    assert proc.stdin and proc.stdout

    def send(raw: bytes) -> None:
        proc.stdin.write(raw + b"\n")
        proc.stdin.flush()

    pending = bytearray()   # read from the fd itself: a buffered readline would
    # hide a second line already read from select

    def answer(within: float = 60) -> dict[str, Any]:
        while b"\n" not in pending:
            ready, _, _ = select.select([proc.stdout], [], [], within)
            assert ready, f"no answer within {within} s"
            chunk = os.read(proc.stdout.fileno(), 1 << 20)
            assert chunk, "the server closed stdout"
            pending.extend(chunk)
        line, _, rest = bytes(pending).partition(b"\n")
        pending[:] = rest
        return json.loads(line)

    def call(i: int, name: str, args: Any) -> bytes:
        return json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                           "params": {"name": name, "arguments": args}}).encode()

    try:
        send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": LATEST_HANDSHAKE_VERSION, "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}}).encode())
        assert answer()["id"] == 1
        send(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}')
        send(b'{"jsonrpc": "2.0", "id": 2, "method": "tools/list"')   # cut short
        assert answer() == {"jsonrpc": "2.0", "id": None, "error": {
            "code": -32700, "message": "the message is not valid JSON"}}
        send(b'[{"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, '
             b'{"jsonrpc": "2.0", "id": "four", "method": "tools/list"}]')
        got = [answer(), answer()]
        assert [(a["id"], a["error"]["code"]) for a in got] == [(3, -32600), ("four", -32600)]
        assert "batch" in got[0]["error"]["message"]
        send(b'{"jsonrpc": "2.0", "id": 5, "method": 7}')
        assert answer()["id"] == 5
        for i in range(100, 160):   # many at once, some of them refused
            send(call(i, "find_symbol", {"name": "slugify_title"} if i % 2 else {"name": i}))
        answers = {a["id"]: a for a in (answer() for _ in range(60))}
        assert sorted(answers) == list(range(100, 160))
        assert all("text/slug.py" in answers[i]["result"]["content"][0]["text"]
                   for i in range(101, 160, 2))
        assert all(answers[i]["result"]["isError"] for i in range(100, 160, 2))
    finally:
        proc.kill()
        proc.wait()


def test_requests_sent_with_stdin_closed_at_once_are_all_answered(
        live: LiveRagex, proj: Path) -> None:
    """`printf '…requests…' | ragexctl mcp`: the SDK ended the session the moment
    stdin closed, cancelling the calls still running, so only the fastest were
    answered (3 of 9 here).  Every request read is answered before the server ends."""
    from mcp_types.version import LATEST_HANDSHAKE_VERSION

    lines = [{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": LATEST_HANDSHAKE_VERSION, "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}},
             {"jsonrpc": "2.0", "method": "notifications/initialized"}]
    lines += [{"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {
        "name": "search_code",
        "arguments": {"query": "compute the tax of an invoice" if i % 2 else "slugify_title"}}}
              for i in range(2, 10)]
    proc = subprocess.run([sys.executable, "-m", "ragexctl", "mcp", "--project", str(proj)],
                          input="".join(json.dumps(m) + "\n" for m in lines).encode(),
                          capture_output=True, env=live.env, timeout=600)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    answers = {m["id"]: m for m in map(json.loads, proc.stdout.decode().splitlines())
               if "id" in m}
    assert sorted(answers) == list(range(1, 10)), proc.stderr.decode()[-2000:]
    assert "billing.py" in answers[3]["result"]["content"][0]["text"]
    assert "text/slug.py" in answers[2]["result"]["content"][0]["text"]


def test_a_reader_that_closes_the_servers_output_ends_it_quietly(
        live: LiveRagex, proj: Path) -> None:
    """`ragexctl mcp | head -c1`: the SDK's writer met the closed pipe inside its task
    group, and the ExceptionGroup reached the person as a traceback (exit 1).  A
    closed reader ends ``mcp`` as it ends every command: quietly, exit 0."""
    from mcp_types.version import LATEST_HANDSHAKE_VERSION

    read_end, write_end = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "ragexctl", "mcp", "--project", str(proj)],
                            stdin=subprocess.PIPE, stdout=write_end, stderr=subprocess.PIPE,
                            env=live.env)
    os.close(write_end)
    assert proc.stdin and proc.stderr
    try:
        proc.stdin.write((json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": LATEST_HANDSHAKE_VERSION, "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}}) + "\n").encode())
        proc.stdin.flush()
        assert os.read(read_end, 1), "the server wrote nothing"
        os.close(read_end)   # the reader is satisfied: head -c1
        read_end = -1
        for i in range(2, 6):   # answers now meet a closed pipe
            proc.stdin.write((json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/list"})
                              + "\n").encode())
            proc.stdin.flush()
        proc.stdin.close()
        err = proc.stderr.read().decode()
        proc.wait(timeout=60)
    finally:
        if read_end >= 0:
            os.close(read_end)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err and "BrokenPipe" not in err, err[-3000:]
    assert proc.returncode == 0, err[-3000:]


def test_refuses_to_index_the_home_directory(live: LiveRagex) -> None:
    home = Path(tempfile.mkdtemp(prefix="rx-home-", dir="/tmp"))
    env = {**live.env, "HOME": str(home)}

    async def main() -> Any:
        async with session(live, None, cwd=home, env=env) as c:
            return await c.call_tool("search_code", {"query": "anything"})

    try:
        result = run(main)
    finally:
        os.rmdir(home)
    assert result.is_error
    assert "ragexctl mcp --project PATH" in text_of(result), text_of(result)


def test_config_snippets_use_the_real_executable(live: LiveRagex, proj: Path) -> None:
    exe = os.path.realpath(os.path.join(os.path.dirname(sys.executable), "ragexctl"))
    assert os.path.isfile(exe)
    scratch = Path(tempfile.mkdtemp(prefix="rx-cfg-", dir="/tmp"))
    env = {**live.env, "HOME": str(scratch)}

    def config(*args: str) -> str:
        out = subprocess.run([exe, "mcp", "config", *args], env=env, cwd=scratch,
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout

    try:
        claude = config("claude")
        assert f"claude mcp add --scope user ragex -- {exe} mcp" in claude
        assert json.loads(claude[claude.index("{"):])["mcpServers"]["ragex"] == {
            "command": exe, "args": ["mcp"]}
        pinned = config("claude", "--project", str(proj))
        assert f"-- {exe} mcp --project {proj}" in pinned
        cursor = config("cursor", "--project", str(proj))
        assert json.loads(cursor[cursor.index("{"):])["mcpServers"]["ragex"]["args"] == [
            "mcp", "--project", str(proj)]
        vscode = json.loads((lambda t: t[t.index("{"):])(config("vscode")))
        assert vscode["servers"]["ragex"] == {"type": "stdio", "command": exe,
                                              "args": ["mcp", "--project", "${workspaceFolder}"]}
        codex = config("codex")
        import tomllib

        table = tomllib.loads(codex.split("# or run")[0])
        assert table["mcp_servers"]["ragex"] == {"command": exe, "args": ["mcp"]}
        generic = config("generic")
        assert exe in generic
        bad = subprocess.run([exe, "mcp", "config", "emacs"], env=env, cwd=scratch,
                             capture_output=True, text=True, timeout=30)
        assert bad.returncode == 2 and "invalid choice" in bad.stderr
        # printed, never written: nothing appeared in HOME or the cwd
        assert list(scratch.iterdir()) == []
    finally:
        for p in sorted(scratch.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        scratch.rmdir()


def _cmdlines() -> list[str]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    out.append(fh.read().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                pass
    return out


def test_find_symbol_during_first_index_never_claims_the_name_is_absent() -> None:
    from ragexctl.mcp import render_no_definition

    during = {"hits": [], "notes": [], "coverage": {
        "files_indexed": 165, "files_total": 849, "chunks_indexed": 3000, "chunks_embedded": 0,
        "catalog_complete": False, "complete": False, "eta_seconds": None}}
    during["notes"] = ["no definition by that name in the files indexed so far; the index "
                       "is still being built, so it may yet be found: ask again shortly"]
    text = render_no_definition("check_is_fitted", during, root="/p")
    assert text.startswith("no definition named 'check_is_fitted' found yet in /p\n"), text
    assert "may yet be found" in text and text.count("165/849 files indexed so far") == 1
    assert text.count("still being built") == 1, text
    done = dict(during, notes=[], coverage=dict(during["coverage"], files_indexed=849,
                                                catalog_complete=True, complete=True))
    assert render_no_definition("nope", done, root="/p") == (
        "no definition named 'nope' found in /p\n"
        "constants and variables are not definitions: search_code with the name finds the "
        "lines that assign and use it")
