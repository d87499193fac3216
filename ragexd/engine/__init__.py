"""ragex's search engine: discovery, chunking, embeddings, stores, search.

Import-light on purpose: importing the package (or ``Engine``) pulls in no
torch, chromadb or tree-sitter; those load inside the functions that need them.
"""

from .engine import Engine
from .types import (Coverage, EngineError, IndexProgress, IndexStatus, IndexSummary, SearchHit,
                    SearchOutcome, SearchQuery, SkippedFile)

__all__ = ["Coverage", "Engine", "EngineError", "IndexProgress", "IndexStatus", "IndexSummary",
           "SearchHit", "SearchOutcome", "SearchQuery", "SkippedFile"]
