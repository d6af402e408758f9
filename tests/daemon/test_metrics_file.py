"""The daemon writes the metrics textfile: atomically, mode 0644, every interval, from the
decisions it makes and the health it has, and once more as it stops."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from drivers.base import Presentation
from reader.daemon.daemon import Daemon
from reader.errors import ConfigError
from reader.gate.config import parse_config
from tests.support.promtext import parse, value
from tests.support.waiting import wait_for


def _read(path: Path) -> dict:
    return parse(path.read_text()) if path.exists() else {}


def test_the_daemon_writes_valid_metrics_from_its_decisions_and_health(tmp_path: Path) -> None:
    textfile = tmp_path / "textfile_collector" / "gate_reader.prom"
    config = parse_config(
        f'[gate]\nid = "g"\n[cache]\npath = "{tmp_path / "c.db"}"\n[door]\npin_factory = "mock"\n'
        f'[daemon]\nruntime_dir = "{tmp_path / "run"}"\n[metrics]\ntextfile = "{textfile}"\ninterval_s = 1\n'
        f'[[readers]]\nname = "cam"\ndriver = "camera"\ndevice = "{tmp_path / "none" / "%05d.png"}"\n')
    daemon = Daemon(config)
    daemon.start()
    try:
        assert wait_for(textfile.exists, 10)
        assert stat.S_IMODE(textfile.stat().st_mode) == 0o644
        assert daemon.pipeline is not None
        daemon.pipeline.submit_presentation(Presentation("cam", "qr", "GP1:not-base45!", time.monotonic()))

        def counted() -> bool:
            families = _read(textfile)
            return "gate_reader_decisions_total" in families and families["gate_reader_decisions_total"].samples != []

        assert wait_for(counted, 10)
        families = _read(textfile)
        assert value(families, "gate_reader_decisions_total", reader="cam", decision="deny", reason="malformed") == 1
        assert value(families, "gate_reader_decision_latency_seconds", "_count", reader="cam") == 1
        assert value(families, "gate_reader_source_up", reader="cam") == 0  # its file is not there
        assert value(families, "gate_reader_worker_responding") == 1
        assert value(families, "gate_reader_door_state", state="secured") == 1
        assert value(families, "gate_reader_journal_unsent_records") >= 1  # daemon_started and the decision
        assert value(families, "gate_reader_info", gate="g") == 1
        assert list(textfile.parent.iterdir()) == [textfile]  # no temporary file left beside it
        written = value(families, "gate_reader_metrics_written_timestamp_seconds")
    finally:
        daemon.stop()
    # one last write as it stopped
    assert value(_read(textfile), "gate_reader_metrics_written_timestamp_seconds") >= written


def test_the_optional_localhost_endpoint_serves_the_same_metrics(tmp_path: Path) -> None:
    """[metrics] listen: prometheus-client serves the last rendering on loopback (no textfile here)."""
    import socket
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = parse_config(
        f'[gate]\nid = "g"\n[cache]\npath = "{tmp_path / "c.db"}"\n[door]\npin_factory = "mock"\n'
        f'[daemon]\nruntime_dir = "{tmp_path / "run"}"\n[metrics]\nlisten = "127.0.0.1:{port}"\ninterval_s = 1\n')
    daemon = Daemon(config)
    daemon.start()
    try:
        def scraped() -> dict:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                return {f.name: f for f in text_string_to_metric_families(answer.read().decode())}

        assert wait_for(lambda: "gate_reader_door_state" in scraped(), 10)
        families = scraped()
        assert families["gate_reader_worker_responding"].samples[0].value == 1
        assert {s.labels["state"]: s.value for s in families["gate_reader_door_state"].samples} == {
            "secured": 1, "released": 0, "open": 0}
        # a second daemon on the same port is refused before anything starts, naming the key
        second = Daemon(parse_config(
            f'[gate]\nid = "g2"\n[cache]\npath = "{tmp_path / "c2.db"}"\n[door]\npin_factory = "mock"\n'
            f'[daemon]\nruntime_dir = "{tmp_path / "run2"}"\n[metrics]\nlisten = "127.0.0.1:{port}"\n'))
        with pytest.raises(ConfigError, match=r"metrics\.listen: cannot listen on 127\.0\.0\.1"):
            second.start()
        second.stop()
        assert not (tmp_path / "c2.db").exists()
    finally:
        daemon.stop()


@pytest.mark.parametrize(("listen", "ok"), [
    ("127.0.0.1:9101", True), ("[::1]:9101", True), ("localhost:9101", True),
    ("0.0.0.0:9101", False), ("192.168.1.5:9101", False), ("127.0.0.1", False), ("127.0.0.1:99999", False),
])
def test_the_endpoint_is_loopback_only(tmp_path: Path, listen: str, ok: bool) -> None:
    text = f'[gate]\nid = "g"\n[cache]\npath = "c.db"\n[metrics]\nlisten = "{listen}"\n'
    if ok:
        assert parse_config(text, tmp_path / "g.toml").metrics.listen[1] == 9101  # type: ignore[union-attr]
    else:
        with pytest.raises(ConfigError, match=r"metrics\.listen: must be a loopback address"):
            parse_config(text, tmp_path / "g.toml")
