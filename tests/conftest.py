"""Fixtures shared by the command-level tests: a TUF repository served over loopback HTTP,
a centre (issuer, repository, a status list) and a gate config pointing at it."""

from __future__ import annotations

import functools
import http.server
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


def code_for(issuer: Issuer, holder: Holder, idx: int) -> str:
    now = int(time.time())
    credential = issue_credential(issuer, sub=f"E{idx}", iat=now - 60, exp=now + 86_400, holder=holder,
                                  status=(URI, idx))
    return holder.present_qr(credential, iat=now)


