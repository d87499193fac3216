"""The wire protocol between ragexctl, ragexd and workers.

Stdlib and pyzmq only (``frames`` does not even import zmq): the thin client
imports this package, so it must never pull in the engine or anything heavy.
"""

from .args import (IndexArgs, LogsArgs, NoArgs, OpArgs, RemoveArgs, SearchArgs, SimilarArgs,
                   SnapshotArgs,
                   StopArgs)
from .errors import ErrorCode, ErrorInfo, RagexError
from .frames import (MAX_MESSAGE_BYTES, PROTOCOL_MAJOR, PROTOCOL_TAG, decode, decode_body,
                     encode, request_id_of, split_envelope)
from .messages import (ARGS_BY_OP, IDEMPOTENT_OPS, INDEXING_OPS, MAX_LIMIT, MAX_QUERY_BYTES,
                       SEARCH_MODES, WORKER_OPS, Hit, Op, Progress, Reply, Request, SearchResult,
                       new_request_id)

__all__ = [
    "ErrorCode", "ErrorInfo", "RagexError", "MAX_MESSAGE_BYTES", "PROTOCOL_MAJOR",
    "PROTOCOL_TAG", "decode", "decode_body", "encode", "request_id_of", "split_envelope",
    "IDEMPOTENT_OPS", "INDEXING_OPS", "MAX_QUERY_BYTES", "SEARCH_MODES", "WORKER_OPS", "Hit", "Op",
    "Progress", "Reply", "Request", "SearchArgs", "SearchResult", "new_request_id",
    "ARGS_BY_OP", "MAX_LIMIT", "IndexArgs", "LogsArgs", "NoArgs", "OpArgs", "RemoveArgs",
    "SnapshotArgs", "StopArgs", "SimilarArgs",
]
