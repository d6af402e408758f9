"""``gate-reader authority publish --policy``: a gate group's reader policy published by the
centre as the TUF target ``policy/<group>.toml``, checked first by the gate's own parser, and
the gate that syncs it applying it; ``--remove`` withdrawing a target."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from offline_cache.store import Store
from reader.gate.config import load_config
from reader.gate.policy_tables import MAX_POLICY_BYTES
from reader.gate.state import site_with_central
from tests.support.centre import Centre, ok, run

POLICY = b'''[readers.cam]
schedule = "day"
kinds = ["qr"]
[schedules.day]
windows = ["mon-sun 06:00-22:00"]
[lockdown]
groups = ["security"]
'''


def _policy(tmp_path: Path, text: bytes, name: str = "hq.toml") -> Path:
    folder = tmp_path / f"p{len(list(tmp_path.glob('p*')))}"
    folder.mkdir()
    path = folder / name
    path.write_bytes(text)
    return path


def _group_gate(centre: Centre) -> Path:
    """The centre fixture's gate, in gate group hq, with a reader the policy names."""
    config: Path = centre.config  # type: ignore[attr-defined]
    text = config.read_text().replace('[gate]\n', '[gate]\ngroup = "hq"\n', 1)
    config.write_text(text + '[[readers]]\nname = "cam"\ndriver = "camera"\ndevice = 0\n')
    return config


def _signed(centre: Centre) -> dict[str, bytes]:
    """Every metadata file the repository serves, by name: what a publish signs anew."""
    folder = centre.repo / "public" / "metadata"
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_a_policy_published_with_the_command_reaches_the_gate_and_applies(centre: Centre, tmp_path: Path) -> None:
    config = _group_gate(centre)
    out = ok("authority", "publish", "--repo", centre.repo, "--policy", _policy(tmp_path, POLICY))
    assert "target: policy/hq.toml" in out
    assert centre.contents()["policy/hq.toml"] == POLICY
    code, out, err = run("sync", "--config", config)
    assert code == 0, out + err
    assert "policy/hq.toml" in out
    gate = load_config(config)
    assert gate.site.readers["cam"].schedule is None  # the local config names none
    with Store.open(gate.cache.path) as store:  # what the daemon lays over its local policy
        site, problem = site_with_central(store, gate.site, gate.gate.group)
    assert problem is None and site.origin == "central policy/hq.toml over local"
    assert site.readers["cam"].schedule == "day" and site.readers["cam"].kinds == frozenset({"qr"})
    assert site.lockdown_groups == frozenset({"security"})
    # An empty policy gives every rule back to the gates' own config.
    ok("authority", "publish", "--repo", centre.repo, "--policy", _policy(tmp_path, b""))
    assert run("sync", "--config", config)[0] == 0
    with Store.open(gate.cache.path) as store:
        site, problem = site_with_central(store, gate.site, gate.gate.group)
    assert problem is None and site.readers["cam"] == gate.site.readers["cam"] and site.lockdown_groups == frozenset()
    # --remove withdraws the target from the repository (that one was empty: no note).
    code, out, err = run("authority", "publish", "--repo", centre.repo, "--remove", "policy/hq.toml")
    assert code == 0 and "policy/hq.toml" not in centre.contents() and "policy/hq.toml" not in out + err


def _applied(config: Path) -> tuple[str, str | None, int]:
    """(the policy's origin, the problem, the generation) as a daemon started now would have them."""
    gate = load_config(config)
    with Store.open(gate.cache.path) as store:
        site, problem = site_with_central(store, gate.site, gate.gate.group)
        return site.origin, problem, store.generation()


def test_a_withdrawn_central_policy_stops_applying_at_the_next_sync(
        centre: Centre, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 10: the centre's --remove is signed (targets.json no longer lists the target),
    so the gate's next successful sync drops the policy it holds, says which, and moves the
    generation (a running daemon reloads on it); a failed sync in between changes nothing."""
    config = _group_gate(centre)
    ok("authority", "publish", "--repo", centre.repo, "--policy", _policy(tmp_path, POLICY))
    assert run("sync", "--config", config)[0] == 0
    origin, problem, generation = _applied(config)
    assert (origin, problem) == ("central policy/hq.toml over local", None)
    code, _out, err = run("authority", "publish", "--repo", centre.repo, "--remove", "policy/hq.toml")
    assert code == 0 and "policy/hq.toml" not in centre.contents()
    assert ("note: policy/hq.toml withdrawn: the gates of group 'hq' drop it at their next sync and apply their "
            "own config's policy") in err
    # A sync that fails (here: the metadata URL answers 404) keeps what the gate holds.
    broken = tmp_path / "broken.toml"
    broken.write_text(config.read_text().replace(centre.server.metadata_url,  # type: ignore[attr-defined]
                                                 centre.server.metadata_url + "gone/", 1))  # type: ignore[attr-defined]
    assert run("sync", "--config", broken)[0] == 1
    assert _applied(config) == ("central policy/hq.toml over local", None, generation)
    caplog.set_level(logging.WARNING)
    code, out, err = run("sync", "--config", config)
    assert code == 0, out + err
    assert _applied(config) == ("local", None, generation + 1)
    said = [r.getMessage() for r in caplog.records if "withdrawn" in r.getMessage()]
    assert len(said) == 1 and "central policy/hq.toml withdrawn (policy/hq.toml is not in the repository's " \
        "signed targets)" in said[0], said
    # Nothing left to drop: the next sync changes nothing and says nothing of it.
    caplog.clear()
    assert run("sync", "--config", config)[0] == 0
    assert _applied(config)[2] == generation + 1 and not [r for r in caplog.records if "withdrawn" in r.getMessage()]


@pytest.mark.parametrize(("text", "message"), [
    (b"readers = 1 = 2", "central policy/hq.toml: not valid TOML"),
    (b"[readers.cam]\ncolour = 1\n", "central policy/hq.toml: readers.cam.colour: unknown key"),
    (b'[schedules.day]\nwindows = ["mon-fri 07:00-25:00"]\n', "central policy/hq.toml: schedules.day.windows[0]"),
    (b'[readers.cam]\nkinds = ["iris"]\n', "central policy/hq.toml: readers.cam.kinds"),
    (b'timezone = "Mars/Olympus"\n', "central policy/hq.toml: timezone"),
    (b"\xff\xfe", "central policy/hq.toml: not UTF-8"),
    (b"# " + b"x" * MAX_POLICY_BYTES + b"\n", f"more than the {MAX_POLICY_BYTES} a policy may have"),
])
def test_a_policy_a_gate_would_ignore_is_refused_at_publish_with_its_key_path(
        centre: Centre, tmp_path: Path, text: bytes, message: str) -> None:
    """The gate's own parser, the gate's own message; and nothing is signed: every metadata
    file the repository serves is the same bytes as before, the good targets with it."""
    before, contents = _signed(centre), centre.contents()
    status = centre.status_file("extra.cwt")
    code, out, err = run("authority", "publish", "--repo", centre.repo, "--status", status,
                         "--policy", _policy(tmp_path, text))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err and "nothing published" in err, err
    assert _signed(centre) == before and centre.contents() == contents


@pytest.mark.parametrize(("name", "message"), [
    ("hq.txt", "the file name is the gate group, ending in .toml"),
    ("h q.toml", "the gate group (the file name without .toml) must be"),
])
def test_a_policy_file_whose_name_is_not_a_gate_group_is_refused(
        centre: Centre, tmp_path: Path, name: str, message: str) -> None:
    before = _signed(centre)
    code, _out, err = run("authority", "publish", "--repo", centre.repo, "--policy", _policy(tmp_path, POLICY, name))
    assert code == 2 and message in err, err
    assert _signed(centre) == before


def test_removing_a_target_that_is_not_published_is_refused(centre: Centre) -> None:
    """A mistyped group would otherwise sign new metadata and leave the real policy published."""
    before = _signed(centre)
    code, _out, err = run("authority", "publish", "--repo", centre.repo, "--remove", "policy/hg.toml")
    assert code == 2 and "--remove policy/hg.toml: not published (published: " in err, err
    assert _signed(centre) == before


def test_a_policy_naming_a_schedule_only_a_gate_defines_is_published_with_a_note(
        centre: Centre, tmp_path: Path) -> None:
    """Schedules merge with the gate's own: a name this file does not define may be defined
    there, so the centre cannot refuse it; it says what a gate without it will do."""
    code, out, err = run("authority", "publish", "--repo", centre.repo,
                         "--policy", _policy(tmp_path, b'[readers.cam]\nschedule = "night"\n'))
    assert code == 0, err
    assert "note: policy/hq.toml: readers.cam names schedule 'night', not defined in this file" in err
    assert "target: policy/hq.toml" in out
