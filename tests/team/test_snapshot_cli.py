"""Snapshots as users run them: ``ragexctl index --export`` by a CI user,
``ragexctl import`` and ``[index] base`` by two laptop users (three isolated
homes, each with its own real ragexd and workers), hostile files refused with
exit 2 and one sentence while the index keeps serving.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.harness import PrivateEnv, commit_all, git, git_checkout, short_tmp, write_tree


def hits(env: PrivateEnv, tree: Path, query: str, *more: str) -> list[dict]:
    r = env.ctl("search", query, "--json", "-n", "5", *more, cwd=tree)
    assert r.returncode in (0, 1), r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


@pytest.fixture(scope="module")
def team():
    base = short_tmp("rx-team-")
    ci_repo = write_tree(base / "ci" / "repo", files=5)
    git_checkout(ci_repo, "A")
    # commit B on a laptop's clone: one module changed, one added
    laptop = base / "laptop" / "repo"
    git(base, "clone", "-q", str(ci_repo), str(laptop))
    (laptop / "text_utils.py").write_text((laptop / "text_utils.py").read_text()
                                          + "\n\ndef reverse_words(text):\n"
                                          "    return ' '.join(reversed(text.split()))\n")
    (laptop / "geometry.py").write_text("def polygon_area(points):\n"
                                        "    \"\"\"Area of a simple polygon (shoelace).\"\"\"\n"
                                        "    return 0.5 * abs(sum(x0 * y1 - x1 * y0 for "
                                        "(x0, y0), (x1, y1) in zip(points, points[1:])))\n")
    commit_all(laptop, "B")
    envs = {name: PrivateEnv(base / name / "env", TERM="dumb") for name in ("ci", "laptop")}
    yield base, ci_repo, laptop, envs
    left = {name: env.stop_everything() for name, env in envs.items()}
    logs = {name: log.read_text()[-3000:] for name, env in envs.items()
            if left[name] and (log := env.state / "logs" / "ragexd.log").exists()}
    shutil.rmtree(base, ignore_errors=True)
    assert not any(left.values()), f"ragex processes survived `stop --all`: {left}\n{logs}"


def test_ci_exports_a_snapshot_pinned_to_its_commit(team) -> None:
    base, ci_repo, _, envs = team
    out = base / "artifacts"
    out.mkdir()
    r = envs["ci"].ctl("index", "--export", str(out / "repo.tar.gz"), str(ci_repo))
    assert r.returncode == 0, r.stderr
    commit = git(ci_repo, "rev-parse", "HEAD")
    assert f"wrote {out / 'repo.tar.gz'}: 5 files" in r.stdout
    assert f"at commit {commit[:12]}" in r.stdout and "uncommitted" not in r.stdout
    with tarfile.open(out / "repo.tar.gz") as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert manifest["git"] == {"commit": commit, "dirty": False}
    assert sorted(manifest["files"]) == sorted(p.name for p in ci_repo.glob("*.py"))
    assert not [p for p in out.iterdir() if p.name != "repo.tar.gz"], "a temporary file is left"


def test_a_laptop_imports_it_and_embeds_only_its_own_changes(team) -> None:
    base, _, laptop, envs = team
    r = envs["laptop"].ctl("import", str(base / "artifacts" / "repo.tar.gz"), "--project",
                           str(laptop), "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    summary = next(x for x in lines if x.get("type") == "summary")
    snap = next(x for x in lines if x.get("type") == "snapshot")
    assert (summary["files_indexed"], summary["files_unchanged"]) == (2, 4), summary
    assert snap["file_count"] == 5 and snap["git"]["commit"]
    assert hits(envs["laptop"], laptop, "area of a polygon")[0]["name"] == "polygon_area"
    assert hits(envs["laptop"], laptop, "compute_invoice_total")[0]["path"] == "billing.py"


@pytest.mark.parametrize("kind", ["garbage", "other model"])
def test_a_bad_snapshot_exits_2_with_a_sentence_and_the_index_keeps_serving(team,
                                                                            kind) -> None:
    base, _, laptop, envs = team
    bad = base / f"bad-{kind.replace(' ', '-')}.tar.gz"
    if kind == "garbage":
        bad.write_bytes(b"these are not the bytes you are looking for\n" * 50)
        sentence = "is not a readable ragex snapshot"
    else:
        with tarfile.open(base / "artifacts" / "repo.tar.gz") as tar:
            members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
        doc = json.loads(members[0][1])
        doc["embedder"] = "e5-mistral-7b"
        members[0] = (members[0][0], json.dumps(doc).encode())
        members[0][0].size = len(members[0][1])
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for info, data in members:
                tar.addfile(info, io.BytesIO(data))
        bad.write_bytes(gzip.compress(buf.getvalue()))
        sentence = "the snapshot was embedded with e5-mistral-7b, this ragex uses all-MiniLM"
    before = envs["laptop"].ctl("status", str(laptop), "--json").stdout
    r = envs["laptop"].ctl("import", str(bad), "--project", str(laptop))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr, r.stderr
    assert sentence in r.stderr.strip().splitlines()[-1], r.stderr   # after the progress line
    assert hits(envs["laptop"], laptop, "polygon_area")[0]["path"] == "geometry.py"
    after = envs["laptop"].ctl("status", str(laptop), "--json").stdout
    count = lambda s: [(w["index"]["files"], w["index"]["chunks"])   # noqa: E731
                       for w in json.loads(s)["workers"]]
    assert count(after) == count(before)


def test_a_missing_file_is_refused_before_any_request(team) -> None:
    base, _, laptop, envs = team
    r = envs["laptop"].ctl("import", str(base / "nope.tar.gz"), "--project", str(laptop))
    assert r.returncode == 2 and "no such snapshot file" in r.stderr


def test_index_base_starts_a_new_users_project_from_the_newest_snapshot(team) -> None:
    base, _, laptop, _ = team
    clone = base / "second" / "repo"
    git(base, "clone", "-q", str(laptop), str(clone))
    env = PrivateEnv(base / "second" / "env", TERM="dumb",
                     RAGEX_INDEX_BASE=str(base / "artifacts"))
    try:
        found = hits(env, clone, "area of a polygon")
        assert found and found[0]["name"] == "polygon_area"
        log = env.ctl("logs", str(clone), "-n", "200").stdout
        assert "started from the base snapshot" in log, log
        assert "re-indexed 2 changed files, 4 unchanged" in log, log
    finally:
        left = env.cleanup()
        assert not left


def test_import_without_ragexd_runs_the_same_code_one_shot(team) -> None:
    base, _, laptop, envs = team
    clone = base / "oneshot" / "repo"
    git(base, "clone", "-q", str(laptop), str(clone))
    r = envs["laptop"].ctl("import", str(base / "artifacts" / "repo.tar.gz"), "--project",
                           str(clone), "--no-daemon")
    assert r.returncode == 0, r.stderr
    assert "imported" in r.stdout and "indexed 2 files (4 unchanged, 0 removed)" in r.stdout
    found = envs["laptop"].ctl("search", "polygon_area", "--no-daemon", "--json", cwd=clone)
    assert json.loads(found.stdout.splitlines()[0])["path"] == "geometry.py"


def test_a_docker_ragexd_says_how_to_import_instead_of_no_such_file(team) -> None:
    """A container sees the project and its index at other paths, not the host's
    snapshot file: ragexd refuses with the way to do it, before any worker runs."""
    from tests.harness.containers import docker_problem

    problem = docker_problem()
    if problem:
        pytest.skip(f"Docker unavailable: {problem}")
    base, _, laptop, _ = team
    env = PrivateEnv(base / "docker-env", runtime="docker", TERM="dumb")
    try:
        r = env.ctl("import", str(base / "artifacts" / "repo.tar.gz"), "--project", str(laptop))
        assert r.returncode == 2
        assert f"run `ragexctl stop {laptop}`, then the same command with --no-daemon" \
            in r.stderr, r.stderr
    finally:
        assert not env.cleanup()
