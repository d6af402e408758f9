"""A test centre and the command run in-process: what the command-level tests build on.

:class:`Centre` is an issuer (its key and certificate under ``ROOT/keys``) and a TUF
repository at ``ROOT/repo`` that publishes its certificate, made with ``gate-reader
authority`` as an operator would; :meth:`Centre.gate_config` writes the configuration of a
gate that syncs from it while :meth:`Centre.serve` serves it on loopback. :func:`run` runs
``gate-reader`` in this process with its output captured.
"""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

from offline_cache.publish import Repository
from reader.cli import main
from reader.gatepass.authority import Holder, Issuer, issue_credential
from reader.gatepass.statuslist import StatusList, verify_status_token
from reader.gatepass.trust import TrustStore
from tests.support.http import StaticServer

URI = "https://status.example.gov/lists/main"


def run(*argv: object) -> tuple[int, str, str]:
    """``gate-reader ARGV`` through reader.cli.main, stdout and stderr captured (the log
    lines too: the entry point's handler writes to whatever sys.stderr is). An argparse
    usage error's SystemExit is its exit status."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(arg) for arg in argv])
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def ok(*argv: object) -> str:
    """:func:`run`, which must succeed; its stdout."""
    code, out, err = run(*argv)
    assert code == 0, out + err
    return out


def code_for(issuer: Issuer, holder: Holder, idx: int, uri: str = URI) -> str:
    """A QR text of a fresh credential at index ``idx`` of list ``uri``, shown now."""
    now = int(time.time())
    credential = issue_credential(issuer, sub=f"E{idx}", iat=now - 60, exp=now + 86_400, holder=holder,
                                  status=(uri, idx))
    return holder.present_qr(credential, iat=now)


class Centre:
    """An issuer and a repository publishing its certificate (``publish=False``: the
    repository is left for the caller to create, with lists of its own)."""

    def __init__(self, root: Path, alg: str = "ES256", *, publish: bool = True, uri: str = URI) -> None:
        self.root = root
        self.uri = uri  # the uri of the lists status_file signs
        self.repo = root / "repo"
        self.key, self.cert = root / "keys" / "issuer.key", root / "keys" / "issuer.pem"
        self.issuer = Issuer.generate(alg)
        self.issuer.save(self.key, self.cert)
        self.issuer_args: list[object] = ["--issuer-key", self.key, "--issuer-cert", self.cert]
        if publish:
            ok("authority", "publish", "--repo", self.repo, "--init", "--trust", self.cert)

    def status_file(self, name: str, *extra: object, uri: str | None = None, size: int = 64) -> Path:
        """A list signed into a new folder (the target is status/<file name>)."""
        path = self.root / f"f{len(list(self.root.glob('f*')))}" / name
        path.parent.mkdir()
        ok("authority", "status-list", *self.issuer_args, "--uri", uri or self.uri, "--size", size, *extra,
           "--out", path)
        return path

    def revoke(self, *extra: object, name: str = "s1") -> str:
        return ok("authority", "revoke", "--repo", self.repo, *self.issuer_args, "--list", name, *extra)

    def contents(self) -> dict[str, bytes]:
        return Repository.open(self.repo).published_contents()

    def published(self, name: str = "s1") -> StatusList:
        return verify_status_token(self.contents()[f"status/{name}.cwt"], TrustStore.from_pem_files([self.cert]))

    def versions(self) -> dict[str, str]:
        return Repository.open(self.repo).targets()

    def serve(self) -> StaticServer:
        """The repository's public/ folder on loopback, not started (use it with ``with``)."""
        return StaticServer(self.repo / "public")

    def gate_config(self, server: StaticServer, *, gate_id: str = "e2e-gate", path: Path | None = None,
                    timeout_s: float = 2, total_timeout_s: float = 5) -> Path:
        """A gate's TOML syncing from ``server`` (started), its cache under ROOT/gate."""
        config = path or self.root / "gate.toml"
        config.write_text(
            f'[gate]\nid = "{gate_id}"\n[cache]\npath = "{self.root / "gate" / "cache.db"}"\n'
            f'[sync]\nmetadata_url = "{server.metadata_url}"\ntargets_url = "{server.targets_url}"\n'
            f'root = "{self.repo / "public" / "metadata" / "root.json"}"\n'
            f"timeout_s = {timeout_s:g}\ntotal_timeout_s = {total_timeout_s:g}\n"
        )
        return config
