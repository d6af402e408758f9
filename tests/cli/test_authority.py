"""``gate-reader authority``: every action, driven through ``reader.cli.main`` as a user would.

What the command writes is checked by the verifier itself (the gate's ``Decider``,
``verify_status_token``, ``verify_signed_token``) with a trust store loaded from the .pem
the command wrote, so a test passes only when a gate would accept the output, not merely
when the bytes round-trip. Keys are generated once per module: RSA keygen costs ~100 ms.
"""

# Over ~400 lines on purpose: every authority action through the command, on one module-scoped set of keys.

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cbor2
import pytest

from reader.gate.deciding import Decider
from reader.gatepass.authority import CLAIM_LEGACY_CARDS, LEGACY_LIST_TYP, Issuer, legacy_card_key
from reader.gatepass.decide import Clock, Decision, Policy
from reader.gatepass.envelope import DEFAULT_PREFIXES
from reader.gatepass.statuslist import StatusLists, verify_signed_token, verify_status_token
from reader.gatepass.trust import TrustStore
from tests.support import REPO
from tests.support.centre import run as run_command

ISSUER_ALGS = ("ES256", "ES384", "ES512", "EdDSA", "PS256")
HOLDER_ALGS = ("ES256", "EdDSA")
ISSUED = 1_800_000_000  # 2027-01-15T08:00:00Z, fixed so every decision below is reproducible
AT = ISSUED + 3_600
ERROR_PREFIX = "gate-reader authority: error: "


def fields(out: str) -> dict[str, str]:
    """The ``label: value`` lines the command prints on stdout."""
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


def run_quiet(*argv: object) -> tuple[int, str, str]:
    """Run ``gate-reader authority ARGS...`` in-process: (exit status, stdout, stderr)."""
    return run_command("authority", *argv)


Runner = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run() -> Runner:
    """Run ``gate-reader authority ARGS...`` in-process: (exit status, stdout, stderr)."""
    return run_quiet


def assert_one_error_line(code: int, out: str, err: str, context: object = None) -> None:
    assert (code, out) == (2, ""), (context, err)
    lines = err.splitlines()
    assert len(lines) == 1, (context, err)
    assert lines[0].startswith(ERROR_PREFIX), (context, err)


@dataclass(frozen=True)
class Pki:
    root: Path
    kids: dict[str, str]

    def key(self, alg: str) -> Path:
        return self.root / f"{alg.lower()}.key"

    def cert(self, alg: str) -> Path:
        return self.root / f"{alg.lower()}.pem"

    def holder(self, alg: str) -> Path:
        return self.root / f"holder-{alg.lower()}.key"

    def trust(self) -> TrustStore:
        return TrustStore.from_pem_files(self.cert(alg) for alg in ISSUER_ALGS)

    def issuer_args(self, alg: str = "ES256") -> list[object]:
        return ["--issuer-key", self.key(alg), "--issuer-cert", self.cert(alg)]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    kids = {}
    for alg in ISSUER_ALGS:
        code, out, err = run_quiet("issuer", "--alg", alg, "--out", root, "--name", alg.lower(), "--cn", f"Test {alg}")
        assert code == 0, err
        kids[alg] = fields(out)["kid"]
    for alg in HOLDER_ALGS:
        code, _out, err = run_quiet("holder", "--alg", alg, "--out", root / f"holder-{alg.lower()}.key")
        assert code == 0, err
    return Pki(root, kids)


def issue(
    run: Runner, pki: Pki, out: Path, *extra: object, issuer: str = "ES256", holder: str | None = "ES256"
) -> dict[str, str]:
    args: list[object] = ["issue", *pki.issuer_args(issuer), "--sub", "E1234", "--iat", ISSUED, "--days", 30]
    if holder is not None:
        args += ["--holder", pki.holder(holder)]
    code, stdout, err = run(*args, *extra, "--out", out)
    assert code == 0, err
    return fields(stdout)


def decide(payload: str | bytes, pki: Pki, *, at: float = AT, lists: StatusLists | None = None,
           challenge: bytes | None = None, prefixes: tuple[str, ...] = DEFAULT_PREFIXES, **policy: object) -> Decision:
    """The gate's decision on what the command made: QR text, or an NFC answer to ``challenge``."""
    decider = Decider(pki.trust(), lists or StatusLists(), policy=Policy(**policy), prefixes=prefixes)  # type: ignore[arg-type]
    return decider.decide("qr" if challenge is None else "nfc", payload, Clock(at), challenge=challenge)


# --- keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ISSUER_ALGS)
def test_issuer_files_kid_and_modes(pki: Pki, alg: str) -> None:
    (anchor,) = TrustStore.from_pem_files([pki.cert(alg)])
    assert anchor.kid.hex() == pki.kids[alg]
    assert stat.S_IMODE(os.stat(pki.key(alg)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(pki.cert(alg)).st_mode) == 0o644
    assert anchor.subject == f"CN=Test {alg}"
    Issuer.load(pki.key(alg), pki.cert(alg))  # key and certificate belong together


@pytest.mark.parametrize("alg", HOLDER_ALGS)
def test_holder_key_mode(pki: Pki, alg: str) -> None:
    assert stat.S_IMODE(os.stat(pki.holder(alg)).st_mode) == 0o600
    assert b"PRIVATE KEY" in pki.holder(alg).read_bytes()


def test_refuses_to_overwrite_keys_unless_forced(run: Runner, tmp_path: Path) -> None:
    code, out, _err = run("issuer", "--alg", "EdDSA", "--out", tmp_path)
    assert code == 0
    first_kid = fields(out)["kid"]
    key_bytes = (tmp_path / "issuer.key").read_bytes()
    assert_one_error_line(*run("issuer", "--alg", "EdDSA", "--out", tmp_path))
    assert (tmp_path / "issuer.key").read_bytes() == key_bytes
    code, out, _err = run("issuer", "--alg", "EdDSA", "--out", tmp_path, "--force")
    assert code == 0 and fields(out)["kid"] != first_kid
    assert stat.S_IMODE(os.stat(tmp_path / "issuer.key").st_mode) == 0o600

    holder = tmp_path / "h.key"
    assert run("holder", "--alg", "ES256", "--out", holder)[0] == 0
    code, out, err = run("holder", "--alg", "ES256", "--out", holder)
    assert_one_error_line(code, out, err)
    assert "already exists" in err and "--force" in err
    assert run("holder", "--alg", "EdDSA", "--out", holder, "--force")[0] == 0
    assert stat.S_IMODE(os.stat(holder).st_mode) == 0o600


def test_refuses_a_certificate_left_without_its_key(run: Runner, tmp_path: Path) -> None:
    (tmp_path / "issuer.pem").write_text("old")
    assert_one_error_line(*run("issuer", "--alg", "ES256", "--out", tmp_path))
    assert not (tmp_path / "issuer.key").exists()


# --- credentials and presentations --------------------------------------------------------------


@pytest.mark.parametrize("holder_alg", HOLDER_ALGS)
@pytest.mark.parametrize("issuer_alg", ISSUER_ALGS)
def test_issue_and_present_is_granted(run: Runner, pki: Pki, tmp_path: Path, issuer_alg: str, holder_alg: str) -> None:
    cred = tmp_path / "cred.cwt"
    printed = issue(run, pki, cred, issuer=issuer_alg, holder=holder_alg)
    code, out, err = run("present", "--holder", pki.holder(holder_alg), "--credential", cred, "--at", AT)
    assert code == 0, err
    assert out.count("\n") == 1 and out.startswith("GP1:")
    decision = decide(out.rstrip("\n"), pki)
    assert decision.granted, decision
    assert decision.subject == "E1234" and decision.kid.hex() == pki.kids[issuer_alg]
    assert decision.assurance == "high"
    assert printed["credential"] == decision.credential_hash
    assert decide(out.rstrip("\n"), pki, at=AT + 31).reason == "presentation_stale"


def test_issue_writes_every_claim(run: Runner, pki: Pki, tmp_path: Path) -> None:
    cred = tmp_path / "c.cwt"
    cti = "00112233445566778899aabbccddeeff"
    issue(run, pki, cred, "--iss", "acme", "--nbf", ISSUED + 60, "--name", "Alice B", "--org", "ACME",
          "--group", "lobby", "--group", "lab", "--carrier", "mobile", "--cti", cti,
          "--status-uri", "https://pki.example/s1", "--status-idx", 7)
    sign1 = cbor2.loads(cred.read_bytes())
    assert sign1.tag == 18
    claims = cbor2.loads(sign1.value[2])
    assert claims[1] == "acme" and claims[2] == "E1234"
    assert claims[6] == ISSUED and claims[4] == ISSUED + 30 * 86_400 and claims[5] == ISSUED + 60
    assert type(claims[4]) is int  # whole seconds stay CBOR integers
    assert claims[7] == bytes.fromhex(cti)
    assert claims[65535] == {"status_list": {"idx": 7, "uri": "https://pki.example/s1"}}
    assert (claims["name"], claims["org"], claims["car"]) == ("Alice B", "ACME", "mobile")
    assert claims["grp"] == ["lobby", "lab"]
    assert set(claims[8][1]) == {1, -1, -2, -3}
    assert stat.S_IMODE(os.stat(cred).st_mode) == 0o644


@pytest.mark.parametrize(("tag", "expect"), [("61", 61), ("none", None)])
def test_issue_tags(run: Runner, pki: Pki, tmp_path: Path, tag: str, expect: int | None) -> None:
    cred = tmp_path / "c.cwt"
    issue(run, pki, cred, "--tag", tag)
    item = cbor2.loads(cred.read_bytes())
    if expect is None:
        assert isinstance(item, list)
    else:
        assert item.tag == 61 and item.value.tag == 18
    code, out, _err = run("present", "--holder", pki.holder("ES256"), "--credential", cred, "--at", AT)
    assert code == 0 and decide(out.strip(), pki).granted


def test_iso_times_and_validity(run: Runner, pki: Pki, tmp_path: Path) -> None:
    cred = tmp_path / "c.cwt"
    code, _out, err = run("issue", *pki.issuer_args(), "--holder", pki.holder("EdDSA"), "--sub", "E9",
                          "--iat", "2027-01-15T08:00:00Z", "--exp", "2027-01-15T10:00:00+01:00", "--out", cred)
    assert code == 0, err
    claims = cbor2.loads(cbor2.loads(cred.read_bytes()).value[2])
    assert claims[6] == ISSUED  # 2027-01-15T08:00:00Z
    assert claims[4] == ISSUED + 3_600  # 10:00 at +01:00 is 09:00Z
    at = claims[4]
    code, out, _err = run("present", "--holder", pki.holder("EdDSA"), "--credential", cred, "--at", at)
    assert decide(out.strip(), pki, at=at).reason == "expired"


def test_present_options_and_png(run: Runner, pki: Pki, tmp_path: Path) -> None:
    cred = tmp_path / "c.cwt"
    issue(run, pki, cred)
    png = tmp_path / "qr" / "code.png"
    code, out, err = run("present", "--holder", pki.holder("ES256"), "--credential", cred, "--at", AT,
                         "--nonce", "0011223344556677", "--prefix", "ACME:", "--compress", "yes",
                         "--png", png, "--scale", 3)
    assert code == 0, err
    assert out.count("\n") == 1 and out.startswith("ACME:")
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert stat.S_IMODE(os.stat(png).st_mode) == 0o644
    assert [p.name for p in png.parent.iterdir()] == ["code.png"]  # no temporary file left
    text = out.strip()
    assert decide(text, pki, prefixes=("ACME:",)).granted
    assert decide(text, pki).reason == "malformed"  # the default prefix list does not know ACME:


def test_static_pass(run: Runner, pki: Pki, tmp_path: Path) -> None:
    cred = tmp_path / "visitor.cwt"
    code, out, err = run("issue", *pki.issuer_args("PS256"), "--sub", "V7", "--iat", ISSUED, "--days", 1,
                         "--out", cred)
    assert code == 0
    assert "static" in err and "--holder" in err
    code, out, err = run("static", "--credential", cred, "--png", tmp_path / "v.png")
    assert code == 0, err
    text = out.strip()
    assert out.count("\n") == 1
    assert decide(text, pki).reason == "static_not_allowed"
    decision = decide(text, pki, allow_static=True)
    assert decision.granted and decision.assurance == "static" and decision.subject == "V7"
    assert (tmp_path / "v.png").read_bytes()[:4] == b"\x89PNG"


def test_nfc_answer_to_rnonce_and_to_challenge(run: Runner, pki: Pki, tmp_path: Path) -> None:
    cred = tmp_path / "c.cwt"
    issue(run, pki, cred, issuer="ES384", holder="EdDSA")
    rnonce = bytes(range(16))
    code, out, err = run("answer", "--holder", pki.holder("EdDSA"), "--credential", cred, "--at", AT,
                         "--rnonce", rnonce.hex(), "--gate-id", "lobby-1")
    assert code == 0, err
    answer = bytes.fromhex(out.strip())
    decision = decide(answer, pki, challenge=rnonce)
    assert decision.granted, decision
    assert cbor2.loads(cbor2.loads(answer).value[2])[5] == "lobby-1"
    other = decide(answer, pki, challenge=bytes(16))
    assert other.reason == "challenge_mismatch"

    challenge = cbor2.dumps({1: rnonce, 2: "turnstile-3"})
    code, out, err = run("answer", "--holder", pki.holder("EdDSA"), "--credential", cred, "--at", AT,
                         "--challenge", challenge.hex())
    assert code == 0, err
    answer = bytes.fromhex(out.strip())
    assert decide(answer, pki, challenge=rnonce).granted
    assert cbor2.loads(cbor2.loads(answer).value[2])[5] == "turnstile-3"


# --- lists -------------------------------------------------------------------------------------


def test_status_list_revoked_and_suspended(run: Runner, pki: Pki, tmp_path: Path) -> None:
    uri = "https://pki.example/status/1"
    revoked_file = tmp_path / "revoked.txt"
    revoked_file.write_text("# exported by HR\n20\n\n30-31  # two at once\n")
    out_file = tmp_path / "s1.cwt"
    code, out, err = run("status-list", *pki.issuer_args("EdDSA"), "--uri", uri, "--size", 64, "--bits", 2,
                         "--revoked", "1,3", "--revoked", "7-9", "--suspended", "10", "--revoked-file", revoked_file,
                         "--iat", ISSUED, "--exp", AT + 600, "--ttl", 300, "--out", out_file)
    assert code == 0, err
    assert fields(out) == {"uri": uri, "entries": "64", "revoked": "8", "suspended": "1", "file": str(out_file)}
    status = verify_status_token(out_file.read_bytes(), pki.trust(), now=AT)
    assert (status.uri, status.bits, status.iat, status.exp, status.ttl) == (uri, 2, ISSUED, AT + 600, 300)
    assert [i for i in range(64) if status.value(i) == 1] == [1, 3, 7, 8, 9, 20, 30, 31]
    assert [i for i in range(64) if status.value(i) == 2] == [10]
    lists = StatusLists([status])

    for idx, reason in ((3, "revoked"), (8, "revoked"), (31, "revoked"), (10, "suspended"), (5, "granted")):
        cred = tmp_path / f"c{idx}.cwt"
        issue(run, pki, cred, "--status-uri", uri, "--status-idx", idx)
        code, text, _err = run("present", "--holder", pki.holder("ES256"), "--credential", cred, "--at", AT)
        assert decide(text.strip(), pki, lists=lists).reason == reason, idx


def test_status_list_defaults_are_revokes(run: Runner, pki: Pki, tmp_path: Path) -> None:
    """status-list and revoke sign lists of the same shape by default: 2 bits per entry and
    an exp 7 days after iat (a list made by one and changed by the other keeps it)."""
    out_file = tmp_path / "s.cwt"
    code, _out, err = run("status-list", *pki.issuer_args("PS256"), "--uri", "u:2", "--size", 10, "--revoked", 9,
                          "--suspended", 3, "--out", out_file)
    assert code == 0, err
    status = verify_status_token(out_file.read_bytes(), pki.trust())
    assert status.bits == 2 and status.exp == status.iat + 7 * 86_400 and status.ttl is None
    assert status.value(9) == 1 and status.value(3) == 2 and status.value(8) == 0
    assert abs(status.iat - time.time()) < 60
    for extra, bits, exp in ((["--bits", 1, "--exp-days", 2], 1, 2 * 86_400), (["--no-exp"], 2, None)):
        code, _out, err = run("status-list", *pki.issuer_args("PS256"), "--uri", "u:2", "--size", 10,
                              "--iat", ISSUED, *extra, "--out", out_file)
        assert code == 0, err
        status = verify_status_token(out_file.read_bytes(), pki.trust())
        assert (status.bits, status.exp) == (bits, None if exp is None else ISSUED + exp)


def test_legacy_list(run: Runner, pki: Pki, tmp_path: Path) -> None:
    cards_csv = tmp_path / "cards.csv"
    cards_csv.write_text("identifier,subject,exp\nBAR=CODE 1,E3,2027-03-01T00:00:00Z\n0456AB,E4,\n")
    out_file = tmp_path / "cards.cwt"
    list_exp = ISSUED + 86_400
    code, out, err = run("legacy-list", *pki.issuer_args("ES512"), "--card", "04A1B2C3D4E5F6=E1",
                         "--card", f"04FFEE=E2@{ISSUED + 7}", "--cards-file", cards_csv,
                         "--iat", ISSUED, "--exp", list_exp, "--out", out_file)
    assert code == 0, err
    assert fields(out)["cards"] == "4"
    _sign1, claims, _label = verify_signed_token(out_file.read_bytes(), pki.trust(), "application/gatepass-legacy+cwt")
    assert LEGACY_LIST_TYP == "application/gatepass-legacy+cwt"
    assert claims[6] == ISSUED and claims[4] == list_exp
    cards = claims[CLAIM_LEGACY_CARDS]
    assert cards == {
        legacy_card_key("04A1B2C3D4E5F6"): {"sub": "E1", "exp": list_exp},
        legacy_card_key("04FFEE"): {"sub": "E2", "exp": ISSUED + 7},
        legacy_card_key("BAR=CODE 1"): {"sub": "E3", "exp": 1_803_859_200},
        legacy_card_key("0456AB"): {"sub": "E4", "exp": list_exp},
    }


# --- errors and help ------------------------------------------------------------------------------


def bad_cases(pki: Pki, tmp: Path) -> list[list[object]]:
    cred = tmp / "bad-c.cwt"
    static = tmp / "bad-s.cwt"
    assert run_quiet("issue", *pki.issuer_args(), "--holder", pki.holder("ES256"), "--sub", "E", "--days", 1,
                     "--out", cred)[0] == 0
    assert run_quiet("issue", *pki.issuer_args(), "--sub", "E", "--days", 1, "--out", static)[0] == 0
    issue_base = ["issue", *pki.issuer_args(), "--sub", "E", "--out", tmp / "x.cwt"]
    status_base = ["status-list", *pki.issuer_args(), "--uri", "u", "--out", tmp / "s.cwt"]
    holder_base = ["--holder", pki.holder("ES256"), "--credential", cred]
    return [
        ["issuer", "--alg", "RS256", "--out", tmp / "k"],
        ["issuer", "--alg", "ES256"],  # --out missing: argparse, same one-line form
        ["holder", "--alg", "ES384", "--out", tmp / "h.key"],
        ["issue", "--issuer-key", tmp / "missing.key", "--issuer-cert", pki.cert("ES256"), "--sub", "E",
         "--days", 1, "--out", tmp / "x.cwt"],
        ["issue", "--issuer-key", pki.key("ES256"), "--issuer-cert", pki.cert("EdDSA"), "--sub", "E",
         "--days", 1, "--out", tmp / "x.cwt"],
        [*issue_base, "--days", 1, "--holder", pki.key("PS256")],  # an RSA key cannot be a holder key
        [*issue_base, "--days", 1, "--cti", "zz"],
        [*issue_base, "--days", 1, "--cti", "0011"],
        [*issue_base, "--exp", "next tuesday"],
        [*issue_base, "--exp", "2027-01-01T00:00:00"],  # no zone
        [*issue_base, "--exp", "99999999999999999999"],
        [*issue_base, "--days", 1, "--status-uri", "u"],
        [*issue_base, "--days", 1, "--tag", "17"],
        [*issue_base, "--days", "x"],
        ["present", *holder_base, "--nonce", "00"],
        ["present", *holder_base, "--nonce", "xyz"],
        ["present", *holder_base, "--at", "yesterday"],
        ["present", *holder_base, "--compress", "maybe"],
        ["present", "--holder", pki.holder("EdDSA"), "--credential", cred],  # cnf is another key
        ["present", "--holder", pki.holder("ES256"), "--credential", static],  # no cnf at all
        ["present", "--holder", pki.holder("ES256"), "--credential", pki.cert("ES256")],  # not a credential
        ["static", "--credential", tmp / "nothing.cwt"],
        ["answer", *holder_base, "--rnonce", "0011"],
        ["answer", *holder_base, "--challenge", "a1", "--gate-id", "g"],
        ["answer", *holder_base, "--challenge", "ff"],
        [*status_base, "--size", 10, "--revoked", 10],
        [*status_base, "--size", 10, "--revoked", "5-2"],
        [*status_base, "--size", 10, "--bits", 1, "--suspended", 1],  # needs --bits 2
        [*status_base, "--size", 10, "--exp", AT, "--no-exp"],
        [*status_base, "--size", 10, "--exp-days", 0],
        [*status_base, "--size", 10, "--bits", 2, "--revoked", 1, "--suspended", 1],
        [*status_base, "--size", 10, "--bits", 3],
        [*status_base, "--size", 0],
        [*status_base, "--size", 10, "--revoked-file", tmp / "missing.txt"],
        ["legacy-list", *pki.issuer_args(), "--card", "nocolon", "--exp", AT, "--out", tmp / "l.cwt"],
        ["legacy-list", *pki.issuer_args(), "--card", "A=B", "--card", "A=C", "--exp", AT, "--out", tmp / "l.cwt"],
        ["legacy-list", *pki.issuer_args(), "--card", "A=B@soon", "--exp", AT, "--out", tmp / "l.cwt"],
    ]


def test_bad_inputs_give_one_line_and_exit_2(run: Runner, pki: Pki, tmp_path: Path) -> None:
    for argv in bad_cases(pki, tmp_path):
        assert_one_error_line(*run(*argv), context=argv)
    assert not (tmp_path / "x.cwt").exists() and not (tmp_path / "s.cwt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_bad_action_is_one_line(run) -> None:
    assert_one_error_line(*run("bogus"))
    assert_one_error_line(*run())


@pytest.mark.parametrize(
    "action", ["issuer", "holder", "issue", "present", "static", "answer", "status-list", "legacy-list"]
)
def test_every_action_has_help_with_an_example(run: Runner, action: str) -> None:
    code, out, _err = run(action, "--help")
    assert code == 0
    assert "example:" in out and f"gate-reader authority {action} " in out
    words = " ".join(out.split())
    assert "mode 0" in words or action in ("present", "static", "answer")  # every file writer states the mode


def test_help_runs_as_a_module() -> None:
    done = subprocess.run([sys.executable, "-m", "reader", "authority", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    for action in ("issuer", "holder", "issue", "present", "static", "answer", "status-list", "legacy-list"):
        assert action in done.stdout
    assert "Exit status" in done.stdout
