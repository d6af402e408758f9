"""The centre revokes, the gate syncs over HTTP on loopback, and the gate denies: the whole
distribution path through the real commands (publish, revoke, sync, verify --config,
status), with the repository served by a real HTTP server."""

from __future__ import annotations

import functools
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reader.cli import main
from reader.gatepass.authority import Holder, Issuer, issue_credential

URI = "https://status.example.gov/lists/main"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str, http.server.ThreadingHTTPServer]]:
    repo = tmp_path / "repo"
    repo.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(repo / "public"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield repo, f"http://127.0.0.1:{server.server_address[1]}", server
    server.shutdown()
    server.server_close()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def centre(tmp_path: Path, served, capsys):
    repo, base, server = served
    issuer = Issuer.generate("ES256")
    keys = tmp_path / "keys"
    issuer.save(keys / "issuer.key", keys / "issuer.pem")
    issuer_args = ["--issuer-key", str(keys / "issuer.key"), "--issuer-cert", str(keys / "issuer.pem")]
    code, _, err = run(capsys, "authority", "publish", "--repo", str(repo), "--init",
                       "--trust", str(keys / "issuer.pem"))
    assert code == 0, err
    code, _, err = run(capsys, "authority", "revoke", "--repo", str(repo), *issuer_args, "--list", "main",
                       "--uri", URI, "--size", "1024", "--idx", "0", "--restore")
    assert code == 0, err
    config = tmp_path / "gate.toml"
    config.write_text(
        f'[gate]\nid = "e2e-gate"\n[cache]\npath = "{tmp_path / "gate" / "cache.db"}"\n'
        f'[sync]\nmetadata_url = "{base}/metadata/"\ntargets_url = "{base}/targets/"\n'
        f'root = "{repo / "public" / "metadata" / "root.json"}"\ntimeout_s = 2\ntotal_timeout_s = 5\n'
    )
    return {"repo": repo, "issuer": issuer, "issuer_args": issuer_args, "config": config, "server": server}


def _code(issuer: Issuer, holder: Holder, idx: int) -> str:
    now = int(time.time())
    credential = issue_credential(issuer, sub=f"E{idx}", iat=now - 60, exp=now + 86_400, holder=holder,
                                  status=(URI, idx))
    return holder.present_qr(credential, iat=now)


def test_revocation_reaches_the_gate(centre, capsys) -> None:
    config = str(centre["config"])
    code, out, err = run(capsys, "sync", "--config", config)
    assert code == 0, err
    assert "trust/issuers.pem" in out and "status/main.cwt" in out

    holder = Holder.generate("ES256")
    code, out, err = run(capsys, "verify", "--config", config, "--json", _code(centre["issuer"], holder, 42))
    assert code == 0, out + err
    assert json.loads(out)["clock_trusted"] is True

    code, out, err = run(capsys, "authority", "revoke", "--repo", str(centre["repo"]), *centre["issuer_args"],
                         "--list", "main", "--idx", "42")
    assert code == 0, err
    assert run(capsys, "sync", "--config", config)[0] == 0
    code, out, _ = run(capsys, "verify", "--config", config, _code(centre["issuer"], holder, 42))
    assert code == 1 and "revoked" in out
    # Others on the same list still pass.
    assert run(capsys, "verify", "--config", config, _code(centre["issuer"], holder, 43))[0] == 0

    code, out, _ = run(capsys, "status", "--config", config, "--json")
    report = json.loads(out)
    assert code == 0
    assert [entry["uri"] for entry in report["status_lists"]] == [URI]
    assert report["clock_trusted"] and report["sync"]["last_error"] is None
    assert len(report["trust_anchors"]) == 1


def test_a_sync_with_nothing_new_fetches_no_target(centre, capsys) -> None:
    config = str(centre["config"])
    assert run(capsys, "sync", "--config", config)[0] == 0
    server = centre["server"]
    server.requests.clear()
    code, out, _ = run(capsys, "sync", "--config", config)
    assert code == 0 and "downloaded nothing" in out
    assert not [path for path in server.requests if "/targets/" in path], server.requests


def test_server_gone_keeps_the_data_and_says_why(centre, capsys) -> None:
    config = str(centre["config"])
    assert run(capsys, "sync", "--config", config)[0] == 0
    centre["server"].shutdown()
    centre["server"].server_close()
    code, _, err = run(capsys, "sync", "--config", config)
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and "sync" in err
    code, out, _ = run(capsys, "status", "--config", config, "--json")
    report = json.loads(out)
    assert report["status_lists"] and report["sync"]["last_error"]
    holder = Holder.generate("EdDSA")
    assert run(capsys, "verify", "--config", config, _code(centre["issuer"], holder, 7))[0] == 0


def test_missing_or_corrupt_cache_is_named(tmp_path: Path, capsys) -> None:
    db = tmp_path / "cache.db"
    config = tmp_path / "gate.toml"
    config.write_text(f'[gate]\nid = "g"\n[cache]\npath = "{db}"\n')
    code, _, err = run(capsys, "verify", "--config", str(config), "GP1:x")
    assert code == 2 and str(db) in err
    db.write_bytes(b"this is not a database" * 100)
    code, _, err = run(capsys, "verify", "--config", str(config), "GP1:x")
    assert code == 2 and str(db) in err
    code, _, err = run(capsys, "status", "--config", str(config))
    assert code == 2 and str(db) in err
