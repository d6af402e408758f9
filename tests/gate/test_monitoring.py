"""What monitoring sees of a gate (issue 8, items 14, 15, 16): ``status`` lists everything
that needs attention under problems and exits 1; the sync's exit status is the sync's own,
whatever the upload after it did; each failure is reported once."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from offline_cache.journal import Journal
from offline_cache.store import Store, SyncUpdate
from reader.gatepass.authority import Issuer, build_status_list
from tests.support.centre import URI, run
from tests.support.collector import Collector
from tests.support.unprivileged import gate_reader


def _status(config: Path) -> tuple[int, list[str]]:
    code, out, err = run("status", "--config", str(config), "--json")
    assert code in (0, 1), err
    problems = json.loads(out)["problems"]
    assert code == (1 if problems else 0)
    return code, problems


@pytest.fixture
def collector() -> Iterator[Collector]:
    """A plain-HTTP collector that answers 503 until told otherwise."""
    with Collector(tls=False, fail_status=503) as running:
        yield running


def test_an_upload_failure_leaves_the_sync_exit_status_alone(centre, collector: Collector) -> None:
    config = centre.config
    config.write_text(config.read_text() + f'[upload]\nurl = "{collector.url}"\n')
    code, out, err = run("sync", "--config", str(config))
    assert code == 0 and "sync ok" in out
    assert err.count("\n") == 1 and err.startswith("gate-reader sync: warning: upload failed: ") and "503" in err
    code, _, err = run("upload", "--config", str(config))
    assert code == 1 and err.startswith("gate-reader upload: error: ") and "503" in err  # the upload's own status
    code, problems = _status(config)
    assert code == 1 and [p for p in problems if p.startswith("upload failing") and "503" in p] == problems
    collector.fail_status = None
    assert run("sync", "--config", str(config))[0] == 0
    assert _status(config) == (0, [])


def _gate(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "gate.toml"
    config.write_text(f'[gate]\nid = "g"\n[cache]\npath = "cache.db"\n{extra}')
    return config


def _store_list(tmp_path: Path, iat: float, **kw: object) -> Store:
    issuer = Issuer.generate("ES256")
    token = build_status_list(issuer, uri=URI, size=8, values={}, iat=int(iat))
    store = Store.open(tmp_path / "cache.db", create=True)
    store.apply_sync(SyncUpdate(trust_pem=issuer.certificate_pem, status=[(URI, int(iat), None, token)], legacy=None,
                                tuf_versions={}, time_floor=None, at=time.time(), **kw))  # type: ignore[arg-type]
    return store


def test_status_lists_a_failing_gate_and_exits_1(tmp_path: Path) -> None:
    now = time.time()
    config = _gate(tmp_path, '[upload]\nurl = "http://127.0.0.1:9/e"\nmax_unsent = 10\n')
    with _store_list(tmp_path, now - 60) as store:
        pass
    assert _status(config) == (0, [])

    with Store.open(tmp_path / "cache.db") as store:  # one record waiting for the next upload: normal
        Journal(store).append(time=now - 30, kind="system")
    assert _status(config) == (0, [])
    with Store.open(tmp_path / "cache.db") as store:  # the same record unsent for an hour: a backlog
        store.connection.execute("UPDATE journal SET time = ?", (now - 3600,))
    assert [p[:15] for p in _status(config)[1]] == ["upload backlog:"]
    with Store.open(tmp_path / "cache.db") as store:  # nine fresh records of ten allowed: near the cap
        store.connection.execute("DELETE FROM journal")
        Journal(store).append_many([{"time": now, "kind": "system"}] * 9)
    (problem,) = _status(config)[1]
    assert "near max_unsent=10" in problem
    with Store.open(tmp_path / "cache.db") as store:
        store.connection.execute("DELETE FROM journal")
        store.record_upload(now, "collector 127.0.0.1 answered 503")
        store.record_sync_failure("server unreachable: cannot connect", now)
        store.raise_time_floor(now + 10_000, "test")
    problems = _status(config)[1]
    assert [p.split(":")[0] for p in problems] == ["clock untrusted", "sync failing", "upload failing"], problems
    assert "server unreachable" in problems[1] and "503" in problems[2]


def test_stale_and_ignored_lists_are_problems(tmp_path: Path) -> None:
    config = _gate(tmp_path)
    _store_list(tmp_path, time.time() - 100_000, ignored=[("status/b.cwt", "kid 00 is not trusted")]).close()
    code, out, _ = run("status", "--config", str(config))
    lines = [line for line in out.splitlines() if line.startswith("problem: ")]
    assert code == 1 and len(lines) == 2
    assert lines[0].startswith(f"problem: status list {URI} is stale")
    assert lines[1] == "problem: sync ignored status/b.cwt: kid 00 is not trusted"


def test_a_gate_with_sync_configured_that_never_synced_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "root.json").write_text("{}")
    config = _gate(tmp_path, '[sync]\nmetadata_url = "http://127.0.0.1:9/m/"\ntargets_url = "http://127.0.0.1:9/t/"\n'
                             'root = "root.json"\n')  # fmt: skip
    Store.open(tmp_path / "cache.db", create=True).close()
    assert _status(config)[1] == ["sync: no sync has succeeded yet"]


@pytest.mark.parametrize("verbosity", [[], ["-v"]])
def test_a_failing_sync_reports_its_failure_once(centre, verbosity: list[str]) -> None:
    config = str(centre.config)
    assert run("sync", "--config", config)[0] == 0
    centre.server.stop()
    result = gate_reader(*verbosity, "sync", "--config", config, drop=False)
    assert result.returncode == 1 and result.stdout == ""
    failure = [line for line in result.stderr.splitlines() if "cannot connect" in line]
    assert len(failure) == 1 and failure[0].startswith("gate-reader sync: error: server unreachable: "), result.stderr
    if not verbosity:  # without -v the failure is the only line: urllib3's retry warnings stay quiet
        assert result.stderr.splitlines() == failure, result.stderr
