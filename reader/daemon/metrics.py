"""The daemon's metrics: every ``[metrics] interval_s`` a thread of its own renders the gate's
metrics (``reader.gate.metrics``) and replaces ``[metrics] textfile`` atomically
(``offline_cache.files.write_atomic``, mode 0644, so node_exporter's textfile collector,
running as another user, reads it whole or not at all). No port is opened, unless
``[metrics] listen`` names a loopback address: then prometheus-client (the ``metrics`` extra)
serves the last rendering there (:class:`MetricsEndpoint`; a scrape never makes the gate
render or read anything: its cost is bounded by the interval, whoever scrapes how often).

The daemon's health comes from the decision worker (a ``status`` request, as the control
socket asks it, so nothing is read while the worker changes it); a worker that does not
answer in time shows as ``gate_reader_worker_responding 0``. The cache is read on a
read-only connection of this thread's own (WAL: it never waits for the worker). A failure to
write is logged once per run of failures and never reaches the door.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from offline_cache.errors import StoreError
from offline_cache.files import write_atomic
from offline_cache.store import Store
from reader.errors import ConfigError
from reader.gate.clock import system_clock_synchronised
from reader.gate.metrics import DecisionMetrics, Family, health_families, render, store_facts, store_families

log = logging.getLogger(__name__)

_HEALTH_TIMEOUT_S = 2.0


class MetricsEndpoint:
    """``text``, as the Prometheus exposition, on ``http://HOST:PORT/metrics`` (prometheus-client's
    server, a thread of its own). Made at the daemon's start, before anything else: a missing
    library or a port in use is a configuration error then, with nothing started."""

    def __init__(self, listen: tuple[str, int]) -> None:
        host, port = listen
        try:
            from prometheus_client import CollectorRegistry, start_http_server
            from prometheus_client.parser import text_string_to_metric_families
        except ImportError:
            raise ConfigError("metrics.listen: needs prometheus-client (pip install 'gate-reader[metrics]'); "
                              "or leave listen out and use metrics.textfile") from None
        self.text = ""
        endpoint = self

        class _Rendered:
            def collect(self) -> Any:
                return text_string_to_metric_families(endpoint.text)

        registry = CollectorRegistry()
        registry.register(_Rendered())
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise ConfigError(f"metrics.listen: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.address = f"{host}:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2.0)


class MetricsWriter:
    """Renders every ``interval_s`` (into the textfile, the endpoint, or both) until
    :meth:`close`, which renders once more."""

    def __init__(self, path: Path | None, interval_s: float, *, gate_id: str, version: str, cache: Path,
                 skew_s: float, decisions: DecisionMetrics, health: Callable[[], dict[str, Any] | None],
                 endpoint: MetricsEndpoint | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.endpoint = endpoint
        self.interval_s = interval_s
        self.gate_id = gate_id
        self.version = version
        self.cache = Path(cache)
        self.skew_s = skew_s
        self.decisions = decisions
        self.health = health
        self._store: Store | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing: str | None = None
        self.writes = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="metrics", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self.write_once()
            if self._stop.wait(self.interval_s):
                return

    def render(self) -> str:
        families: list[Family] = [*self.decisions.families(), *health_families(self._health())]
        families += store_families(self._facts(), system_clock_synchronised())
        return render(self.gate_id, self.version, families)

    def write_once(self) -> bool:
        try:
            text = self.render()
            if self.endpoint is not None:
                self.endpoint.text = text
            if self.path is not None:
                write_atomic(self.path, text.encode("utf-8"), 0o644)
        except (OSError, StoreError, ValueError) as exc:
            message = f"{type(exc).__name__}: {exc}"
            if self._failing is None:
                log.warning("metrics: cannot write %s (%s); trying again every %g s", self.path or "them", message,
                            self.interval_s)
            self._failing = message
            return False
        if self._failing is not None:
            log.info("metrics: %s written again", self.path or "rendered")
            self._failing = None
        self.writes += 1
        return True

    def _health(self) -> dict[str, Any] | None:
        try:
            return self.health()
        except (TimeoutError, RuntimeError) as exc:
            log.debug("metrics: no health from the worker: %s", exc)
            return None

    def _facts(self) -> Any:
        try:
            if self._store is None:
                self._store = Store.open(self.cache, readonly=True, check=False)
            return store_facts(self._store, self.skew_s)
        except StoreError as exc:  # the next write opens it again
            log.debug("metrics: cannot read the cache: %s", exc)
            if self._store is not None:
                self._store.close()
                self._store = None
            return None

    def close(self) -> None:
        """Stop, after one last write (the counters as the daemon leaves them)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)
            self.write_once()
        if self._store is not None:
            self._store.close()
            self._store = None
        if self.endpoint is not None:
            self.endpoint.close()
