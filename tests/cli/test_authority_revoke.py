"""The centre's list changes (``authority revoke`` and ``publish --status``) never lose a
published revocation, and never publish what gates would refuse.

Every check reads the list back from the repository as a gate does (the token that the
signed targets metadata names, verified under the published trust bundle), so a test
passes only when the gates would see the entries asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from offline_cache.publish import Repository
from reader.gatepass.authority import Issuer
from reader.gatepass.statuslist import StatusList
from tests.support import REPO as REPO_ROOT
from tests.support.centre import Centre
from tests.support.centre import ok as ok_command
from tests.support.centre import run as run_command

URI = "https://pki.example/status/s1"


def run(*argv: object) -> tuple[int, str, str]:
    return run_command("authority", *argv)


def ok(*argv: object) -> str:
    return ok_command("authority", *argv)


def refused(*argv: object, match: str) -> str:
    """The command fails with one error line containing ``match``."""
    code, out, err = run(*argv)
    assert (code, out) == (2, ""), err
    assert len(err.splitlines()) == 1 and err.startswith("gate-reader authority: error: "), err
    assert match in err, err
    return err


def values(lst: StatusList) -> dict[int, int]:
    return {i: lst.value(i) for i in range(lst.entries) if lst.value(i)}  # type: ignore[misc]


@pytest.fixture
def centre(tmp_path: Path) -> Centre:
    return Centre(tmp_path, uri=URI)


def test_revoke_never_loses_a_published_revocation(centre: Centre) -> None:
    # A list published from a file, with other bits than revoke's default and a ttl.
    first = centre.status_file("s1.cwt", "--bits", 4, "--revoked", "1,5", "--suspended", 7, "--ttl", 600)
    ok("publish", "--repo", centre.repo, "--status", first)
    before = centre.published()
    assert (before.bits, values(before)) == (4, {1: 1, 5: 1, 7: 2})

    out = centre.revoke("--idx", 9)
    after = centre.published()
    assert values(after) == {1: 1, 5: 1, 7: 2, 9: 1}
    assert (after.uri, after.bits, after.ttl, after.entries) == (URI, 4, 600, 64)
    assert after.iat > before.iat and after.exp is not None and after.exp >= after.iat + 7 * 86_400
    assert "3 revoked, 1 suspended" in out

    centre.revoke("--idx", 11, "--suspend")
    assert values(centre.published()) == {1: 1, 5: 1, 7: 2, 9: 1, 11: 2}
    centre.revoke("--idx", 7, "--restore")
    assert values(centre.published()) == {1: 1, 5: 1, 9: 1, 11: 2}

    # A revocation is final: restoring or suspending it is refused, and nothing is published.
    held = centre.versions()
    for change in ("--restore", "--suspend"):
        refused("revoke", "--repo", centre.repo, *centre.issuer_args, "--list", "s1", "--idx", "3-5", change,
                match="entry 5 of https://pki.example/status/s1 is revoked")
    # Options that disagree with the published list are refused, not applied or ignored.
    for option, value in (("--bits", 2), ("--uri", "https://other.example/s"), ("--size", 1000)):
        refused("revoke", "--repo", centre.repo, *centre.issuer_args, "--list", "s1", "--idx", 2, option, value,
                match="disagrees with " + option)
    assert centre.versions() == held
    assert values(centre.published()) == {1: 1, 5: 1, 9: 1, 11: 2}

    # An operator's mistake can be undone, by name.
    centre.revoke("--idx", 5, "--restore", "--unrevoke")
    assert values(centre.published()) == {1: 1, 9: 1, 11: 2}
    assert not (centre.repo / "lists").exists()  # the published list is the one record


def test_revoke_creates_a_list_with_the_shared_defaults(centre: Centre) -> None:
    refused("revoke", "--repo", centre.repo, *centre.issuer_args, "--list", "s1", "--idx", 1,
            match="not published yet: give --uri and --size")
    centre.revoke("--uri", URI, "--size", 100, "--idx", 3, "--suspend")
    lst = centre.published()
    assert (lst.bits, values(lst), lst.entries) == (2, {3: 2}, 100)
    assert lst.exp == lst.iat + 7 * 86_400


def test_publishing_a_list_never_loses_a_published_revocation(centre: Centre) -> None:
    """publish --status replaces a published list only with one gates take as its successor."""
    centre.revoke("--uri", URI, "--size", 64, "--idx", "4,6")
    held, lst = centre.versions(), centre.published()
    later = int(lst.iat) + 10
    cases = [
        (centre.status_file("s1.cwt", "--revoked", 4, "--iat", later), "not revoked in the new one (6)"),
        (centre.status_file("s1.cwt", "--revoked", "4,6", "--iat", int(lst.iat)), "is not after the published"),
        (centre.status_file("other.cwt", "--revoked", 1), "both claim uri"),
        (centre.status_file("s1.cwt", "--revoked", "4,6", "--iat", later, uri="https://x.example/s"),
         "published for uri"),
        (centre.status_file("s1.cwt", "--revoked", "4,6", "--iat", int(time.time()) + 3600),
         "ahead of the clock"),
    ]
    stranger = centre.root / "stranger"
    Issuer.generate("EdDSA").save(stranger / "k.key", stranger / "k.pem")
    ok("status-list", "--issuer-key", stranger / "k.key", "--issuer-cert", stranger / "k.pem", "--uri", URI,
       "--size", 64, "--revoked", "4,6", "--iat", later, "--out", stranger / "s1.cwt")
    cases.append((stranger / "s1.cwt", "is not trusted"))
    for path, match in cases:
        refused("publish", "--repo", centre.repo, "--status", path, match=match)
    # A trust bundle that no longer holds the list's issuer would fail every gate's sync.
    refused("publish", "--repo", centre.repo, "--trust", stranger / "k.pem", match="is not trusted")
    assert centre.versions() == held

    # A successor that keeps the revocations (and suspends one more) is published.
    good = centre.status_file("s1.cwt", "--revoked", "4,6", "--suspended", 9, "--iat", later)
    ok("publish", "--repo", centre.repo, "--status", good)
    assert values(centre.published()) == {4: 1, 6: 1, 9: 2}


def test_revoke_refuses_a_recorded_revocation_the_published_list_lost(centre: Centre) -> None:
    """A repository from before this check: the older revoke's record lists/s1.json holds
    entry 3, and a file without it was published over the list. The next revoke says so."""
    centre.revoke("--uri", URI, "--size", 64, "--idx", 8)
    record = centre.repo / "lists" / "s1.json"
    record.parent.mkdir()
    record.write_text(json.dumps({"uri": URI, "size": 64, "bits": 2, "iat": 0, "values": {"3": 1, "8": 1, "9": 2}}))
    held = centre.versions()
    refused("revoke", "--repo", centre.repo, *centre.issuer_args, "--list", "s1", "--idx", 10,
            match="records revoked entries that status/s1.cwt as published does not revoke (3)")
    assert centre.versions() == held and record.exists()
    code, _out, err = run("revoke", "--repo", centre.repo, *centre.issuer_args, "--list", "s1", "--idx", "3,10")
    assert code == 0 and "moved to s1.json.checked" in err, err  # revoking it again is the remedy given
    assert values(centre.published()) == {3: 1, 8: 1, 10: 1}
    assert not record.exists() and (record.parent / "s1.json.checked").exists()
    centre.revoke("--idx", 11)


def test_concurrent_revocations_are_all_kept(centre: Centre) -> None:
    """Each revoke reads the published list and publishes a changed one under the repository
    lock: revocations run at the same moment must not overwrite each other."""
    centre.revoke("--uri", URI, "--size", 64, "--idx", 0)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "reader", "authority", "revoke", "--repo", str(centre.repo),
               *map(str, centre.issuer_args), "--list", "s1", "--idx"]
    procs = [subprocess.Popen([*command, str(idx)], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for idx in range(1, 5)]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert values(centre.published()) == {0: 1, 1: 1, 2: 1, 3: 1, 4: 1}


def test_publishing_a_legacy_list_gates_would_keep_out_is_refused(centre: Centre) -> None:
    """The legacy card list follows the same rule as status lists: never back in iat."""
    def cards(name: str, iat: int) -> Path:
        path = centre.root / name / "cards.cwt"
        ok("legacy-list", *centre.issuer_args, "--card", "04A1B2=E1", "--iat", iat, "--exp", iat + 86_400,
           "--out", path)
        return path

    now = int(time.time())
    ok("publish", "--repo", centre.repo, "--legacy", cards("new", now))
    held = centre.versions()
    refused("publish", "--repo", centre.repo, "--legacy", cards("old", now - 60), match="is not after the published")
    assert centre.versions() == held


def test_a_bad_published_list_does_not_block_revoking_another(centre: Centre) -> None:
    """The centre's twin of the gate's "one bad list blocks every revocation": a list already
    published that gates ignore (signed by a stranger, or an hour ahead) is warned about, and a
    revocation of another list still goes out; a refresh re-signs the good lists and leaves
    the stranger's alone."""
    from reader.gatepass.authority import build_status_list

    centre.revoke("--uri", URI, "--size", 64, "--idx", 4)
    stranger = Issuer.generate("ES256")
    repo = Repository.open(centre.repo)
    repo.put_target("status/stranger.cwt", build_status_list(stranger, uri="https://x.example/s", size=8,
                                                             values={}, iat=int(time.time())))
    repo.put_target("status/ahead.cwt", build_status_list(centre_issuer(centre), uri="https://x.example/a",
                                                          size=8, values={}, iat=int(time.time()) + 3600))
    repo.publish()
    code, out, err = run("revoke", "--repo", centre.repo, *centre.issuer_args, "--list", "s1", "--idx", 6)
    assert code == 0, err
    assert "status/stranger.cwt as published is refused by gates" in err and "not trusted" in err
    assert "status/ahead.cwt as published is refused by gates" in err and "ahead of the clock" in err
    assert values(centre.published()) == {4: 1, 6: 1}
    # A revoke of the stranger's list itself cannot know its entries: refused, nothing written.
    held = centre.versions()
    code, out, err = run("revoke", "--repo", centre.repo, *centre.issuer_args, "--list", "stranger", "--idx", 1)
    assert (code, out) == (2, "")
    assert "gate-reader authority: error: status/stranger.cwt as published is refused by gates" in err
    assert centre.versions() == held


def centre_issuer(centre: Centre) -> Issuer:
    return Issuer.load(centre.key, centre.cert)
