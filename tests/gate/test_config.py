"""The gate's TOML configuration: every mistake refused with its key path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reader.errors import ConfigError
from reader.gate.config import load_config, parse_config
from tests.support import EXAMPLE_CONFIG as EXAMPLE

MINIMAL = '[gate]\nid = "g1"\n[cache]\npath = "cache.db"\n'


def test_minimal_config_has_the_spec_defaults(tmp_path: Path) -> None:
    config = parse_config(MINIMAL, tmp_path / "gate.toml")
    assert config.gate.id == "g1"
    assert config.cache.path == tmp_path / "cache.db"  # relative to the config file
    assert config.gate.key == tmp_path / "gate.key"
    policy = config.policy.policy()
    assert (policy.window_s, policy.future_skew_s, policy.skew_s, policy.max_age_s) == (30, 5, 300, 86_400)
    assert policy.on_stale == "deny" and not policy.allow_static and not policy.allow_legacy
    assert config.sync is None and config.upload is None


def test_the_example_config_is_valid(tmp_path: Path) -> None:
    # As shipped: none of the files it names exists here, and none needs to for the
    # config to load (each command checks the files it uses; tests/cli/test_config_paths.py).
    config = parse_config(EXAMPLE.read_text(), tmp_path / "gate.toml")
    assert config.sync is not None and config.sync.interval_s == 30
    assert config.upload is not None and config.upload.max_unsent == 1_000_000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[gate]\nid = "g1"\n', "cache: missing"),
        (MINIMAL.replace('"g1"', '"g 1"'), "gate.id"),
        (MINIMAL + "[policy]\nmax_age_s = 0\n", "policy.max_age_s: must be a finite number above 0"),
        (MINIMAL + '[policy]\nmax_age_s = "1d"\n', "policy.max_age_s"),
        (MINIMAL + '[policy]\non_stale = "maybe"\n', 'policy.on_stale: must be "deny" or "allow"'),
        (MINIMAL + "[policy]\nstatic_passes = 1\n", "policy.static_passes: must be true or false"),
        (MINIMAL + "[policy]\nmax_agee_s = 5\n", "policy.max_agee_s: unknown key"),
        (MINIMAL + "[polcy]\n", "polcy: unknown table"),
        (MINIMAL + '[sync]\nmetadata_url = "ftp://x/"\n', "sync.metadata_url: must be an http(s) URL"),
        (MINIMAL + '[sync]\nmetadata_url = "https://x/m/"\ntargets_url = "https://x/t/"\n', "sync.root: missing"),
        (MINIMAL + '[upload]\nurl = "https://c/"\n', "upload.ca: missing"),
        (MINIMAL + '[upload]\nurl = "http://127.0.0.1/"\nbatch = 0\n', "upload.batch: must be an integer above 0"),
        (MINIMAL + '[upload]\nurl = "http://127.0.0.1/"\nbatch = 2.5\n', "upload.batch"),
        ("[gate\n", "not valid TOML"),
    ],
)
def test_mistakes_name_their_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(text, tmp_path / "gate.toml")


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("window_s = inf", "policy.window_s"),
        ("window_s = nan", "policy.window_s"),
        ("max_age_s = 1e999", "policy.max_age_s"),
        ("max_age_s = 1e300", "policy.max_age_s"),
        ("skew_s = -0.5", "policy.skew_s"),
        ("future_skew_s = -inf", "policy.future_skew_s"),
    ],
)
def test_non_finite_or_out_of_range_durations_are_refused(tmp_path: Path, line: str, key: str) -> None:
    # TOML reads inf, nan and 1e999; each would reach the clock or the policy unchecked.
    with pytest.raises(ConfigError, match=re.escape(key) + ": must be a finite number"):
        parse_config(MINIMAL + "[policy]\n" + line + "\n", tmp_path / "gate.toml")


def test_zero_skews_are_allowed(tmp_path: Path) -> None:
    config = parse_config(MINIMAL + "[policy]\nskew_s = 0\nfuture_skew_s = 0\n", tmp_path / "gate.toml")
    assert (config.policy.skew_s, config.policy.future_skew_s) == (0, 0)
