"""``gate-reader bench sync`` and ``bench journal``: the offline cache's figures.

Everything runs on this machine: a TUF repository written by the publisher, served by a
real HTTP server on loopback, synced by the real ``gate-reader sync`` in a child process
(so its wall time and peak RSS are its own), and a loopback collector for uploads.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reader.bench.stats import percentile
from reader.gatepass.authority import Holder, Issuer, build_status_list, issue_credential

URI = "https://status.bench.example/lists/big"


class _LoggingHandler(http.server.SimpleHTTPRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[tuple[str, list[str]]]:
    """A static HTTP server on 127.0.0.1 (any free port) over ``directory``; yields its base
    URL and the list of paths requested."""
    handler = functools.partial(_LoggingHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.requests  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


def _child_sync(config: Path) -> tuple[float, float, str]:
    """Run one ``gate-reader sync`` child; return wall seconds, its peak RSS in MB, output."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "reader", "sync", "--config", str(config), "--no-upload"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    _pid, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    output = child.stdout.read() if child.stdout else ""
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"sync failed in the benchmark: {output.strip()}")
    return wall, usage.ru_maxrss / 1024, output


def run_sync_bench(args: argparse.Namespace) -> int:
    from offline_cache.publish import Repository
    from offline_cache.store import Store
    from reader.gate.config import load_config
    from reader.gate.deciding import Decider
    from reader.gate.state import load_state
    from reader.gatepass.decide import Clock, Policy, _check_status
    from reader.gatepass.statuslist import StatusLists

    result: dict[str, Any] = {"benchmark": "sync", "entries": args.entries}
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="gate-bench-") as tmp_name:
        tmp = Path(tmp_name)
        issuer = Issuer.generate("ES256")
        issuer.save(tmp / "issuer.key", tmp / "issuer.pem")
        revoked = rng.sample(range(args.entries), int(args.entries * args.revoked_percent / 100))
        now = int(time.time())
        token = build_status_list(issuer, uri=URI, size=args.entries, values=dict.fromkeys(revoked, 1), iat=now - 5)
        result["list_token_bytes"] = len(token)
        repo_dir = tmp / "repo"
        repo = Repository.init(repo_dir)
        repo.put_target("trust/issuers.pem", issuer.certificate_pem)
        repo.put_target("status/big.cwt", token)
        repo.publish()
        with serve(repo.public_dir) as (base, requests):
            config = tmp / "gate.toml"
            config.write_text(
                f'[gate]\nid = "bench"\n[cache]\npath = "{tmp / "gate" / "cache.db"}"\n'
                f'[sync]\nmetadata_url = "{base}/metadata/"\ntargets_url = "{base}/targets/"\n'
                f'root = "{repo_dir / "public" / "metadata" / "root.json"}"\n'
            )
            wall, rss, _ = _child_sync(config)
            result.update(first_sync_s=round(wall, 3), first_sync_peak_rss_mb=round(rss, 1))

            requests.clear()
            with Store.open(tmp / "gate" / "cache.db") as store:
                before = [(t.uri, t.stored_at) for t in store.status_tokens()]
            wall, rss, _ = _child_sync(config)
            with Store.open(tmp / "gate" / "cache.db") as store:
                after = [(t.uri, t.stored_at) for t in store.status_tokens()]
            result.update(
                nochange_sync_s=round(wall, 3),
                nochange_requests=list(requests),
                nochange_targets_downloaded=sum("/targets/" in path for path in requests),
                nochange_tokens_rewritten=sum(b != a for b, a in zip(before, after, strict=True)),
            )

            # Revocation latency with a sync timer: revoke at a random phase of the period.
            victim = next(i for i in range(args.entries) if i not in set(revoked[:1000]) and i % 97 == 3)
            holder = Holder.generate("ES256")
            credential = issue_credential(issuer, sub="E-victim", iat=now - 60, exp=now + 86_400, holder=holder,
                                          status=(URI, victim))
            gate_config = load_config(config)
            stop = threading.Event()
            sync_times: list[float] = []

            def timer() -> None:
                while not stop.wait(args.interval):
                    _child_sync(config)
                    sync_times.append(time.time())

            thread = threading.Thread(target=timer, daemon=True)
            thread.start()
            time.sleep(rng.uniform(0, args.interval))
            values = dict.fromkeys(revoked, 1)
            values[victim] = 1
            revoked_at = time.time()
            repo.put_target("status/big.cwt", build_status_list(
                issuer, uri=URI, size=args.entries, values=values, iat=int(revoked_at)))
            repo.publish()
            published_at = time.time()
            denied_at = None
            while denied_at is None and time.time() - revoked_at < 3 * args.interval + 60:
                time.sleep(0.2)
                with Store.open(gate_config.cache.path) as store:
                    state = load_state(store)
                decision = Decider(state.trust, state.lists).decide(
                    "qr", holder.present_qr(credential, iat=int(time.time())), Clock(time.time()))
                if decision.reason == "revoked":
                    denied_at = time.time()
            stop.set()
            result.update(
                revocation_latency_s=None if denied_at is None else round(denied_at - revoked_at, 2),
                revocation_publish_s=round(published_at - revoked_at, 2),
                sync_interval_s=args.interval,
                # Revoked just after a sync started: a whole period, then publish and one sync.
                revocation_latency_worst_s=round(args.interval + (published_at - revoked_at)
                                                 + max(result["first_sync_s"], result["nochange_sync_s"]), 2),
            )

            # Status lookup inside a decision: the list read plus the staleness check.
            with Store.open(gate_config.cache.path) as store:
                lists: StatusLists = load_state(store).lists
            from reader.gatepass.claims import CredentialClaims, StatusRef

            clock, policy = Clock(time.time()), Policy()
            samples = [StatusRef(URI, rng.randrange(args.entries)) for _ in range(100_000)]
            claims = CredentialClaims()
            failures: dict[str, str] = {}
            warnings: list[str] = []
            started = time.perf_counter_ns()
            for ref in samples:
                claims.status = ref
                _check_status(failures, warnings, claims, lists, clock, policy)
            per_lookup = (time.perf_counter_ns() - started) / len(samples) / 1000
            status_list = lists.get(URI)
            assert status_list is not None
            started = time.perf_counter_ns()
            for ref in samples:
                status_list.value(ref.idx)
            result.update(status_check_us=round(per_lookup, 3),
                          bit_lookup_us=round((time.perf_counter_ns() - started) / len(samples) / 1000, 3))
    if not args.json:
        print(f"sync of {args.entries} entries: {result['first_sync_s']} s, peak RSS "
              f"{result['first_sync_peak_rss_mb']} MB; no-change sync {result['nochange_sync_s']} s with "
              f"{len(result['nochange_requests'])} requests; revocation latency {result['revocation_latency_s']} s")
    print(json.dumps(result))
    return 0


def run_journal_bench(args: argparse.Namespace) -> int:
    from offline_cache.gatekey import load_or_create_gate_key
    from offline_cache.journal import Journal
    from offline_cache.store import Store
    from offline_cache.upload import Uploader
    from reader.gate.deciding import Decider
    from reader.gatepass.decide import Clock
    from reader.gatepass.trust import TrustStore, anchors_from_pem

    result: dict[str, Any] = {"benchmark": "journal", "synchronous": "FULL", "journal_mode": "WAL"}
    with tempfile.TemporaryDirectory(prefix="gate-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with Store.open(tmp / "cache.db", create=True) as store:
            journal = Journal(store)
            started = time.perf_counter()
            for i in range(args.appends):
                journal.append(time=time.time(), kind="decision", reader="bench", decision="grant",
                               reason="granted", subject=f"E{i}", credential_hash=f"{i:016x}")
            elapsed = time.perf_counter() - started
            result["appends_per_s"] = round(args.appends / elapsed, 1)
            result["append_ms"] = round(elapsed / args.appends * 1000, 3)

        issuer = Issuer.generate("ES256")
        trust = TrustStore(anchors_from_pem(issuer.certificate_pem, "bench"))
        now = int(time.time())
        codes = []
        for i in range(args.decisions):
            holder = Holder.generate("ES256")
            credential = issue_credential(issuer, sub=f"E{i}", iat=now - 60, exp=now + 86_400, holder=holder)
            codes.append(holder.present_qr(credential, iat=now))
        received: list[int] = []

        class Collector(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(len(json.loads(body)))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/events"
        stop = threading.Event()
        uploaded = [0]

        def upload_loop() -> None:
            with Store.open(tmp / "decisions.db") as own:
                uploader = Uploader(Journal(own), url=url, gate_id="bench", gate_key=load_or_create_gate_key(
                    tmp / "gate.key"), ca_file=None, heartbeat=dict, batch=100, allow_insecure_loopback=True)
                while not stop.is_set():
                    uploaded[0] += uploader.run_once().sent
                    stop.wait(0.05)
                uploaded[0] += uploader.run_once().sent

        with Store.open(tmp / "decisions.db", create=True) as store:
            journal = Journal(store)
            thread = threading.Thread(target=upload_loop, daemon=True)
            thread.start()
            decider = Decider(trust)
            latencies = []
            started = time.perf_counter()
            for code in codes:
                t0 = time.perf_counter_ns()
                decision = decider.decide("qr", code, Clock(time.time()))
                journal.append(time=time.time(), kind="decision", reader="bench",
                               decision="grant" if decision.granted else "deny", reason=decision.reason,
                               subject=decision.subject, credential_hash=decision.credential_hash)
                latencies.append(time.perf_counter_ns() - t0)
            elapsed = time.perf_counter() - started
            stop.set()
            thread.join(timeout=30)
        server.shutdown()
        server.server_close()
        latencies.sort()
        result.update(
            decisions=args.decisions,
            decisions_per_s=round(args.decisions / elapsed, 1),
            decision_and_append_p50_ms=round(statistics.median(latencies) / 1e6, 3),
            decision_and_append_p99_ms=round(percentile(latencies, 0.99) / 1e6, 3),
            uploaded_records=uploaded[0],
        )
    if not args.json:
        print(f"journal: {result['appends_per_s']} durable appends/s; {args.decisions} decisions with upload "
              f"running: {result['decisions_per_s']}/s, p50 {result['decision_and_append_p50_ms']} ms")
    print(json.dumps(result))
    return 0
