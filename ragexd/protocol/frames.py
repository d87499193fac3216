"""Framing: how a message becomes ZeroMQ frames and back.

A message is two frames: a protocol tag (``b"RAGEX/<major>"``) and a UTF-8 JSON
object.  The tag comes first so that a peer speaking another major version is
recognised before its body is parsed, and gets a clear VERSION_MISMATCH reply
naming both versions instead of a confusing parse error.  ROUTER sockets see
routing-identity frames in front; ``split_envelope`` separates them.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import ErrorCode, RagexError
from .messages import Progress, Reply, Request

PROTOCOL_NAME = "RAGEX"
PROTOCOL_MAJOR = 1
PROTOCOL_TAG = f"{PROTOCOL_NAME}/{PROTOCOL_MAJOR}".encode()

#: Hard cap on one frame, enforced by ZeroMQ itself (ZMQ_MAXMSGSIZE) on every
#: socket we bind, so a hostile peer cannot make us buffer gigabytes.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

Message = Request | Reply | Progress


def encode_body(message: Message) -> bytes:
    """A message as UTF-8 JSON.  Never fails on text: a string that is not valid
    Unicode (a file name's undecodable bytes, a lone surrogate) travels as a JSON
    ``\\uXXXX`` escape instead of making the message unsendable."""
    data = message.to_wire()
    try:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def encode(message: Message) -> list[bytes]:
    return [PROTOCOL_TAG, encode_body(message)]


def split_envelope(frames: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """Split ROUTER frames into (routing identities, [tag, body]).

    Everything before the last two frames is envelope.  A message with fewer
    than two frames has an empty body part and fails in ``decode``.
    """
    if len(frames) < 2:
        return list(frames[:-1]) if frames else [], list(frames[-1:])
    return list(frames[:-2]), list(frames[-2:])


def check_tag(tag: bytes) -> None:
    if tag == PROTOCOL_TAG:
        return
    text = tag[:32].decode("ascii", "replace")
    if text.startswith(PROTOCOL_NAME + "/"):
        theirs = text.split("/", 1)[1]
        raise RagexError(
            ErrorCode.VERSION_MISMATCH,
            f"protocol version mismatch: the peer speaks {PROTOCOL_NAME}/{theirs}, "
            f"this ragex speaks {PROTOCOL_TAG.decode()}. Restart ragexd after upgrading "
            "(`ragexctl stop --all`), or install matching versions of ragexctl and ragexd.",
            peer=theirs, ours=PROTOCOL_MAJOR)
    raise RagexError(ErrorCode.BAD_REQUEST,
                     f"not a ragex message (first frame {text!r}; expected "
                     f"{PROTOCOL_TAG.decode()!r})")


def decode_body(frames: list[bytes]) -> dict[str, Any]:
    """Check the tag and parse the JSON object; raise RagexError on anything else."""
    if len(frames) != 2:
        raise RagexError(ErrorCode.BAD_REQUEST,
                         f"a ragex message has 2 frames (tag, body), got {len(frames)}")
    tag, body = frames
    check_tag(tag)
    if len(body) > MAX_MESSAGE_BYTES:
        raise RagexError(ErrorCode.TOO_LARGE,
                         f"message of {len(body)} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")
    try:
        data = json.loads(body.decode("utf-8"))
    except ValueError as exc:   # not UTF-8, not JSON, or a number of more than 4,300 digits
        raise RagexError(ErrorCode.BAD_REQUEST, f"message body is not UTF-8 JSON: {exc}") from None
    except RecursionError:
        raise RagexError(ErrorCode.BAD_REQUEST, "message body is nested too deeply") from None
    if not isinstance(data, dict):
        raise RagexError(ErrorCode.BAD_REQUEST, "message body must be a JSON object")
    return data


def decode(frames: list[bytes]) -> Message:
    data = decode_body(frames)
    kind = data.get("type")
    try:
        if kind == "request":
            return Request.from_wire(data)
        if kind == "reply":
            return Reply.from_wire(data)
        if kind == "progress":
            return Progress.from_wire(data)
    except RagexError:
        raise
    except (TypeError, ValueError) as exc:
        raise RagexError(ErrorCode.BAD_REQUEST, f"malformed {kind} message: {exc}") from None
    raise RagexError(ErrorCode.BAD_REQUEST, f"unknown message type {kind!r}")


def request_id_of(frames: list[bytes]) -> str:
    """Best-effort id of an undecodable message, so the error reply can carry it."""
    try:
        data = json.loads(frames[-1].decode("utf-8"))
        rid = data.get("id") if isinstance(data, dict) else None
        if isinstance(rid, str) and "\0" not in rid:
            rid.encode("utf-8")   # a lone surrogate cannot be echoed back
            return rid
        return ""
    except Exception:  # noqa: BLE001 - best effort by definition
        return ""
