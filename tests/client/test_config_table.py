"""One table each for settings and exit codes, and the README generated from them."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import pytest

from ragexd import config, exitcodes

from tests.harness import PrivateEnv

README = Path(__file__).resolve().parents[2] / "README.md"


def _block(name: str) -> str:
    m = re.search(rf"<!-- {name}:begin -->\n(.*?)<!-- {name}:end -->", README.read_text(), re.S)
    assert m, f"README.md has no {name} block"
    return m.group(1)


def test_the_readme_settings_table_is_the_config_table() -> None:
    assert _block("settings") == config.settings_table(), \
        "regenerate the README block from ragexd.config.settings_table()"


def test_the_readme_exit_codes_are_the_exitcodes_table() -> None:
    assert _block("exitcodes") == "".join(f"- **{c}**: {m}\n" for c, m in exitcodes.TABLE)


def test_every_config_field_is_one_setting() -> None:
    settable = sorted(f.name for f in fields(config.Config) if f.name != "source")
    assert sorted(s.field for s in config.SETTINGS) == settable
    names = [n for s in config.SETTINGS for n in (s.env, *s.aliases)]
    assert len(names) == len(set(names)), "an environment name used twice"


def test_exit_codes_mean_one_thing_each() -> None:
    codes = [c for c, _ in exitcodes.TABLE]
    assert len(codes) == len(set(codes))


@pytest.mark.parametrize("text,expected", [
    ("2g", 2 * 1024**3), ("2G", 2 * 1024**3), ("2gb", 2 * 1024**3), ("2GiB", 2 * 1024**3),
    ("512m", 512 * 1024**2), ("1.5k", 1536), ("100", 100), ("100b", 100), (4096, 4096),
])
def test_sizes_are_read_as_docker_reads_them(text: object, expected: int) -> None:
    assert config.parse_size(text) == expected


def test_a_docker_style_size_in_the_environment_is_binary() -> None:
    assert config.load({"RAGEX_DAEMON_MEMORY_LIMIT": "2g"}).memory_limit == 2 * 1024**3


def test_old_environment_names_still_work_and_the_new_name_wins() -> None:
    assert config.load({"RAGEX_DAEMON_TIMEOUT": "5m"}).idle_timeout == 300
    assert config.load({"RAGEX_DAEMON_TIMEOUT": "5m",
                        "RAGEX_DAEMON_IDLE_TIMEOUT": "1m"}).idle_timeout == 60
    assert config.load({"RAGEX_RUNTIME": "process"}).runtime == "process"


def test_a_bad_value_is_refused_in_the_name_the_user_wrote(rx_env: PrivateEnv) -> None:
    env = dict(rx_env.env, RAGEX_DAEMON_IDLE_TIMEOUT="lots")
    r = rx_env.ctl("ls", env=env)
    assert r.returncode == exitcodes.ERROR
    assert r.stderr.count("RAGEX_DAEMON_IDLE_TIMEOUT") == 1, r.stderr
    assert "RAGEX_DAEMON_IDLE_TIMEOUT: expected a duration" in r.stderr
    assert "'lots'" in r.stderr and "30m" in r.stderr


@pytest.mark.parametrize("value", ["0", "-5"])
def test_a_bulk_threshold_below_one_is_refused_not_a_child_for_every_save(
        rx_env: PrivateEnv, value: str) -> None:
    env = dict(rx_env.env, RAGEX_EMBEDDER_BULK_MIN_CHUNKS=value)
    r = rx_env.ctl("ls", env=env)
    assert r.returncode == exitcodes.ERROR
    assert r.stderr == ("ragexctl: bad configuration: RAGEX_EMBEDDER_BULK_MIN_CHUNKS: expected "
                        f"a whole number of 1 or more, got '{value}'\n"), r.stderr
    assert config.load({"RAGEX_EMBEDDER_BULK_MIN_CHUNKS": "1"}).embedder_bulk_min_chunks == 1


def test_a_bad_value_in_config_toml_names_its_place_once(rx_env: PrivateEnv) -> None:
    """It said "… [daemon] idle_timeout: … [daemon] idle_timeout: expected …"."""
    rx_env.config.mkdir(parents=True, exist_ok=True)
    (rx_env.config / "config.toml").write_text('[daemon]\nidle_timeout = "forever"\n')
    r = rx_env.ctl("ls")
    assert r.returncode == exitcodes.ERROR
    assert r.stderr == (f"ragexctl: bad configuration: {rx_env.config / 'config.toml'} "
                        "[daemon] idle_timeout: expected a duration like '30m', '90s' or "
                        "'2h', got 'forever'\n"), r.stderr


def test_doctor_names_config_keys_no_setting_reads_with_the_one_meant(
        rx_env: PrivateEnv) -> None:
    """A typo (`idle_timout`, `[deamon]`, a key outside its section) was ignored
    without a word, leaving the default in force."""
    rx_env.config.mkdir(parents=True, exist_ok=True)
    (rx_env.config / "config.toml").write_text(
        'memory_limit = "1g"\n[daemon]\nidle_timout = "5m"\nqueue_size = 8\n'
        '[deamon]\nprestart = 0\n')
    r = rx_env.ctl("doctor", "--json")
    assert r.returncode == exitcodes.ERROR, r.stdout + r.stderr
    check = next(c for c in json.loads(r.stdout) if c["name"] == "config")
    assert not check["ok"], check
    for said in ("memory_limit (did you mean [daemon] memory_limit?)",
                 "[daemon] idle_timout (did you mean [daemon] idle_timeout?)",
                 "[deamon] (did you mean [daemon]?)"):
        assert said in check["detail"], check
    assert "queue_size" not in check["detail"], check
    # a bad value beside a typo: both said at once (the typo used to wait for the fix)
    (rx_env.config / "config.toml").write_text(
        '[daemon]\nidle_timeout = "forever"\nqueue_sise = 8\n')
    r = rx_env.ctl("doctor", "--json")
    check = next(c for c in json.loads(r.stdout) if c["name"] == "config")
    assert not check["ok"] and "'forever'" in check["detail"], check
    assert "[daemon] queue_sise (did you mean [daemon] queue_size?)" in check["detail"], check
    (rx_env.config / "config.toml").write_text('[daemon]\nidle_timeout = "5m"\n')
    r = rx_env.ctl("doctor", "--json")
    check = next(c for c in json.loads(r.stdout) if c["name"] == "config")
    assert check["ok"], check
