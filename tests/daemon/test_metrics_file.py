"""The daemon writes the metrics textfile: atomically, mode 0644, every interval, from the
decisions it makes and the health it has, and once more as it stops."""

from __future__ import annotations

import stat
import time
from pathlib import Path

from drivers.base import Presentation
from reader.daemon.daemon import Daemon
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
