"""``gate-reader authority``: the test authority on the command line.

It makes everything a gate reads (issuer and holder keys, credentials, QR and NFC
presentations, status lists, legacy card lists) with :mod:`reader.gatepass.authority`,
so the demo, the tests and a pilot site need no other tool. Every error is one line on
stderr and exit status 2; stdout carries only results (``label: value`` lines, or the QR
text / NFC hex alone) so scripts can read it. Credentials and keys are never printed.
"""

# Over ~400 lines on purpose: eight actions, each its parser and its handler side by side; splitting them
# would part an action's options from what it does with them.

from __future__ import annotations

import argparse
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from offline_cache.files import write_atomic
from offline_cache.loghash import short_hash
from reader.cli import authority_args as a
from reader.cli import publish
from reader.gatepass.authority import (
    ALG_BY_NAME,
    AuthorityError,
    Holder,
    Issuer,
    build_legacy_list,
    build_status_list,
    issue_credential,
)
from reader.gatepass.envelope import MAX_NFC_BYTES
from reader.gatepass.statuslist import MAX_LIST_BYTES

Handler = Callable[[argparse.Namespace], int]

ISSUER_ALGS = tuple(ALG_BY_NAME)  # ES256, ES384, ES512, EdDSA, PS256
HOLDER_ALGS = ("ES256", "EdDSA")
DAY_S = a.DAY_S
_TAGS = {"18": 18, "61": 61, "none": None}


def configure(parser: argparse.ArgumentParser) -> None:
    """Fill in ``gate-reader authority`` and its actions. An action's expected failures
    (AuthorityError, ValueError, OSError) are its one error line and exit 2 (reader.cli)."""
    parser.description = ("The GatePass test authority: makes the keys, credentials, presentations, status "
                          "lists and legacy card lists a gate reads (formats of the GatePass v1 spec).")
    parser.epilog = a.OVERVIEW
    parser.formatter_class = a.HelpFormatter
    a.one_line_errors(parser)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=a.OneLineParser)
    for build in (_issuer_parser, _holder_parser, _issue_parser, _present_parser, _static_parser,
                  _answer_parser, _status_parser, _legacy_parser):
        build(actions)
    publish.add_actions(actions, _action, _load_issuer)


def _action(actions: Any, name: str, handler: Handler, summary: str, description: str, example: str) -> Any:
    parser = actions.add_parser(
        name, help=summary, description=description, epilog=a.example_block(example),
        formatter_class=a.HelpFormatter,
    )
    parser.set_defaults(func=handler)
    return parser


def _load_issuer(args: argparse.Namespace) -> Issuer:
    a.read_bytes(args.issuer_key, "--issuer-key")  # a missing file is named by its option
    a.read_bytes(args.issuer_cert, "--issuer-cert")
    return Issuer.load(Path(args.issuer_key), Path(args.issuer_cert))


def _load_holder(path: str) -> Holder:
    a.read_bytes(path, "--holder")
    try:
        return Holder.load(Path(path))
    except AuthorityError as exc:
        raise AuthorityError(f"--holder {path}: {exc}") from None


def _times(args: argparse.Namespace) -> tuple[int | float, int | float | None]:
    iat = a.date_or_now(args.iat, "--iat")
    return iat, None if args.exp is None else a.numeric_date(args.exp, "--exp")


def _warn_born_expired(iat: float, exp: float | None, what: str) -> None:
    if exp is not None and exp <= iat:
        a.note(f"warning: exp is not after iat: the {what} is expired from the start")


# --- issuer -----------------------------------------------------------------------------

def _issuer_parser(actions: Any) -> None:
    p = _action(
        actions, "issuer", _cmd_issuer, "make an issuer key and its self-signed certificate",
        "Generate an issuer signing key and a self-signed X.509 certificate for it. Writes DIR/NAME.key "
        "(PKCS#8 PEM, unencrypted, mode 0600) and DIR/NAME.pem (the certificate gates trust, mode 0644), "
        "then prints the kid (first 8 bytes of SHA-256 over the certificate DER, hex) and both paths. "
        "Refuses to replace an existing key or certificate unless --force.",
        "gate-reader authority issuer --alg ES256 --out keys --name hq --cn 'ACME HQ Issuer'",
    )
    p.add_argument("--alg", required=True, metavar="{" + ",".join(ISSUER_ALGS) + "}",
                   help="signature algorithm: ECDSA P-256/P-384/P-521, Ed25519 or RSA-2048 PSS")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the two files (created if missing)")
    p.add_argument("--name", default="issuer", help="file name stem: NAME.key and NAME.pem (default %(default)s)")
    p.add_argument("--cn", default="GatePass Test Issuer",
                   help="certificate subject common name, 1..64 characters (default '%(default)s')")
    p.add_argument("--days", default="3650", metavar="N",
                   help="certificate validity in days (default 3650); v1 gates do not check it")
    p.add_argument("--force", action="store_true", help="replace existing NAME.key and NAME.pem")


def _cmd_issuer(args: argparse.Namespace) -> int:
    alg = a.choice(args.alg, "--alg", ISSUER_ALGS)
    if not args.name or "/" in args.name or args.name in (".", ".."):
        raise AuthorityError(f"--name: {args.name!r} is not a plain file name stem")
    days = a.integer(args.days, "--days", 1, 36_500)
    out = Path(args.out)
    key_path, cert_path = out / f"{args.name}.key", out / f"{args.name}.pem"
    a.refuse_existing((key_path, cert_path), args.force)
    issuer = Issuer.generate(alg, args.cn, days)
    a.write_key(key_path, a.pem_private(issuer.private_key), args.force)
    write_atomic(cert_path, issuer.certificate_pem)
    print(f"kid: {issuer.kid.hex()}\nalg: {alg}\nkey: {key_path}\ncertificate: {cert_path}")
    return 0


# --- holder -----------------------------------------------------------------------------

def _holder_parser(actions: Any) -> None:
    p = _action(
        actions, "holder", _cmd_holder, "make a holder (phone or card) device key",
        "Generate a holder device key, the key a phone app or smart card proves possession of. Writes it "
        "as unencrypted PKCS#8 PEM with mode 0600 and prints its alg and path. Refuses to replace an "
        "existing file unless --force.",
        "gate-reader authority holder --alg EdDSA --out keys/alice.key",
    )
    p.add_argument("--alg", required=True, metavar="{" + ",".join(HOLDER_ALGS) + "}",
                   help="ES256 (P-256, phones' secure elements) or EdDSA (Ed25519)")
    p.add_argument("--out", required=True, metavar="FILE", help="the private key file to write (mode 0600)")
    p.add_argument("--force", action="store_true", help="replace an existing FILE")


def _cmd_holder(args: argparse.Namespace) -> int:
    alg = a.choice(args.alg, "--alg", HOLDER_ALGS)
    path = Path(args.out)
    a.refuse_existing((path,), args.force)
    a.write_key(path, a.pem_private(Holder.generate(alg).private_key), args.force)
    print(f"alg: {alg}\nkey: {path}")
    return 0


# --- issue ------------------------------------------------------------------------------

def _issue_parser(actions: Any) -> None:
    p = _action(
        actions, "issue", _cmd_issue, "sign an employee credential (a CWT)",
        "Sign an issuer credential (spec section 1) and write its CBOR bytes (a COSE_Sign1) to --out, "
        "mode 0644. Prints the credential hash (first 8 bytes of SHA-256 over cti, hex: what gates log) "
        "and the file; never the credential or a key. With --holder the credential binds that key (cnf) "
        "and is shown with 'present' or 'answer'; without it, only as a static pass ('static'). "
        + a.TIME_HELP,
        "gate-reader authority issue --issuer-key keys/issuer.key --issuer-cert keys/issuer.pem "
        "--holder keys/alice.key --sub E1234 --name 'Alice B' --group lobby --group lab --days 365 --out alice.cwt",
    )
    a.add_issuer_options(p)
    p.add_argument("--sub", required=True, metavar="EMPLOYEE", help="the employee number (claim sub)")
    p.add_argument("--holder", metavar="FILE", help="holder private key (from 'authority holder') to bind as cnf")
    p.add_argument("--iss", default="gatepass-test-issuer", metavar="TEXT", help="claim iss (default %(default)s)")
    p.add_argument("--iat", metavar="TIME", help="issued-at (default now); gates deny an iat > now + 300 s")
    p.add_argument("--nbf", metavar="TIME", help="not before (default: no nbf claim)")
    until = p.add_mutually_exclusive_group(required=True)
    until.add_argument("--exp", metavar="TIME", help="expiry: gates deny from this second on")
    until.add_argument("--days", metavar="N", help="expiry N days (of 86400 s) after iat")
    p.add_argument("--status-uri", metavar="URI", help="status list uri (with --status-idx): makes it revocable")
    p.add_argument("--status-idx", metavar="N", help="the credential's index in that status list (0-based)")
    p.add_argument("--name", help="display name (claim 'name')")
    p.add_argument("--org", help="organisation code (claim 'org')")
    p.add_argument("--group", action="append", default=[], metavar="G",
                   help="an access group (claim 'grp'); repeat for several")
    p.add_argument("--carrier", metavar="{mobile,card}", help="what carries the key (claim 'car')")
    p.add_argument("--cti", metavar="HEX32", help="credential id, 16 bytes as 32 hex digits (default random)")
    p.add_argument("--tag", default="18", metavar="{18,61,none}",
                   help="CBOR wrapping: tag 18, tag 61 around 18, or bare (default 18)")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the credential (binary CBOR)")


def _cmd_issue(args: argparse.Namespace) -> int:
    tag = _TAGS[a.choice(args.tag, "--tag", _TAGS)]
    carrier = None if args.carrier is None else a.choice(args.carrier, "--carrier", ("mobile", "card"))
    if (args.status_uri is None) != (args.status_idx is None):
        raise AuthorityError("--status-uri and --status-idx go together")
    status = None
    if args.status_uri is not None:
        status = (args.status_uri, a.integer(args.status_idx, "--status-idx", 0, 2**63 - 1))
    iat, exp = _times(args)
    if exp is None:
        exp = iat + a.integer(args.days, "--days", 1, 36_500) * DAY_S
    nbf = None if args.nbf is None else a.numeric_date(args.nbf, "--nbf")
    cti = a.hex_bytes(args.cti, "--cti", size=16) if args.cti is not None else secrets.token_bytes(16)
    issuer = _load_issuer(args)
    holder = _load_holder(args.holder) if args.holder is not None else None
    credential = issue_credential(
        issuer, sub=args.sub, iat=iat, exp=exp, iss=args.iss, cti=cti, nbf=nbf, holder=holder, status=status,
        name=args.name, org=args.org, groups=args.group or None, carrier=carrier, tag=tag,
    )
    write_atomic(Path(args.out), credential)
    _warn_born_expired(iat, exp, "credential")
    if holder is None:
        a.note("note: no --holder, so no cnf key: this credential works only as a static pass "
               "('authority static'), which gates refuse unless their policy allows static passes")
    # what the gate journals for it (Decision.credential_hash): an operator finds it without its id
    print(f"credential: {short_hash(cti)}\nsubject: {args.sub}\nfile: {args.out}")
    return 0


# --- present, static, answer --------------------------------------------------------------

def _holder_credential(args: argparse.Namespace) -> tuple[Holder, bytes]:
    """The holder key and a credential that binds it: a mismatch would only ever give
    bad_holder_signature at the gate, so it is refused here with the reason."""
    holder = _load_holder(args.holder)
    credential, claims = a.read_credential(args.credential)
    cnf = claims.get(8)
    if not isinstance(cnf, dict) or 1 not in cnf:
        raise AuthorityError(f"{args.credential} has no holder key (cnf): show it with 'authority static'")
    if cnf[1] != holder.cose_key():
        raise AuthorityError(f"{args.credential} binds another key than {args.holder} (cnf differs)")
    return holder, credential


def _present_parser(actions: Any) -> None:
    p = _action(
        actions, "present", _cmd_present, "make a QR presentation (prints its text)",
        "Sign a QR presentation (spec 2.1) of the credential with the holder key and print its text, "
        "PREFIX + base45(zlib(COSE_Sign1)), as one line on stdout. Gates accept it within 30 s of --at "
        "(their default window) and only once per nonce. " + a.TIME_HELP,
        "gate-reader authority present --holder keys/alice.key --credential alice.cwt --png alice.png --scale 6",
    )
    a.add_holder_options(p)
    p.add_argument("--nonce", metavar="HEX", help="holder nonce, 8..32 bytes in hex (default 16 random bytes)")
    a.add_qr_options(p)


def _cmd_present(args: argparse.Namespace) -> int:
    iat = a.date_or_now(args.at, "--at")
    nonce = a.hex_bytes(args.nonce, "--nonce", low=8, high=32) if args.nonce is not None else None
    holder, credential = _holder_credential(args)
    text = a.seal(args, holder.present(credential, iat=iat, nonce=nonce))
    print(text)
    if args.png is not None:
        a.write_png(text, args.png, args.scale)
    return 0


def _static_parser(actions: Any) -> None:
    p = _action(
        actions, "static", _cmd_static, "make a static-pass QR text from a credential",
        "Seal the issuer credential itself, unchanged, as QR text (a static pass: printable and "
        "copyable, no holder key involved) and print it as one line on stdout. Gates deny it as "
        "static_not_allowed unless the reader's policy allows static passes.",
        "gate-reader authority static --credential visitor.cwt --png visitor.png",
    )
    p.add_argument("--credential", required=True, metavar="FILE", help="the credential (from 'authority issue')")
    a.add_qr_options(p)


def _cmd_static(args: argparse.Namespace) -> int:
    credential, claims = a.read_credential(args.credential)
    if not isinstance(claims.get(1), str):
        raise AuthorityError(f"{args.credential} is not an issuer credential (its claim 1, iss, is not text)")
    text = a.seal(args, credential)
    print(text)
    if args.png is not None:
        a.write_png(text, args.png, args.scale)
    return 0


def _answer_parser(actions: Any) -> None:
    p = _action(
        actions, "answer", _cmd_answer, "make the NFC answer to a gate's challenge (prints hex)",
        "Compute what an NFC holder answers to the CHALLENGE APDU (spec 2.2): a presentation carrying "
        "the gate's 16-byte rnonce (and its gate id, if any), signed with the holder key. Prints the "
        "answer bytes as one line of hex, for 'gate-reader verify --nfc RNONCE_HEX ANSWER_HEX'. " + a.TIME_HELP,
        "gate-reader authority answer --holder keys/alice.key --credential alice.cwt "
        "--rnonce 00112233445566778899aabbccddeeff --gate-id lobby-1",
    )
    a.add_holder_options(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--challenge", metavar="HEX_CBOR",
                        help="the CHALLENGE APDU data in hex, CBOR {1: rnonce (16 bytes), 2: gate id}")
    source.add_argument("--rnonce", metavar="HEX32", help="the gate's 16-byte rnonce as 32 hex digits")
    p.add_argument("--gate-id", metavar="ID", help="gate id to echo (only with --rnonce; default none)")


def _cmd_answer(args: argparse.Namespace) -> int:
    iat = a.date_or_now(args.at, "--at")
    if args.challenge is not None:
        if args.gate_id is not None:
            raise AuthorityError("--gate-id goes with --rnonce: a --challenge carries its own gate id")
        challenge = a.hex_bytes(args.challenge, "--challenge", high=4096)
        holder, credential = _holder_credential(args)
        try:
            answer = holder.answer_challenge(challenge, credential, iat=iat)
        except AuthorityError as exc:
            raise AuthorityError(f"--challenge: {exc}") from None
    else:
        rnonce = a.hex_bytes(args.rnonce, "--rnonce", size=16)
        holder, credential = _holder_credential(args)
        answer = holder.present(credential, iat=iat, rnonce=rnonce, gate_id=args.gate_id)
    if len(answer) > MAX_NFC_BYTES:
        a.note(f"warning: {len(answer)} bytes: gates refuse NFC answers over {MAX_NFC_BYTES} (too_large)")
    print(answer.hex())
    return 0


# --- status-list, legacy-list ----------------------------------------------------------------

def _status_parser(actions: Any) -> None:
    p = _action(
        actions, "status-list", _cmd_status, "sign a revocation status list token",
        "Sign a Token Status List (spec 3, CWT form) for the credentials issued with --status-uri URI. "
        "Every index is valid (0) unless listed as revoked (1) or suspended (2). IDX lists take single "
        "indexes, comma-separated lists and inclusive ranges A-B, and may be repeated. Writes the token "
        "to --out (mode 0644) and prints the uri and counts. " + a.TIME_HELP,
        "gate-reader authority status-list --issuer-key keys/issuer.key --issuer-cert keys/issuer.pem "
        "--uri https://pki.example/s1 --size 4096 --bits 2 --revoked 3,10-12 --suspended 40 --ttl 3600 --out s1.cwt",
    )
    a.add_issuer_options(p)
    p.add_argument("--uri", required=True, help="the list's uri (claim sub), equal to the credentials' --status-uri")
    p.add_argument("--size", required=True, metavar="N", help="number of entries, indexes 0..N-1")
    p.add_argument("--bits", default=a.DEFAULT_BITS, metavar="{1,2,4,8}",
                   help="bits per entry (default %(default)s, as revoke); suspension needs 2 or more")
    p.add_argument("--revoked", action="append", default=[], metavar="IDX[,IDX...]", help="indexes to revoke")
    p.add_argument("--revoked-file", metavar="FILE", help="more indexes to revoke: one IDX or A-B per line, # comments")
    p.add_argument("--suspended", action="append", default=[], metavar="IDX[,IDX...]", help="indexes to suspend")
    p.add_argument("--suspended-file", metavar="FILE", help="more indexes to suspend, same format as --revoked-file")
    p.add_argument("--iat", metavar="TIME", help="issued-at (default now); gates keep the list with the largest iat")
    until = p.add_mutually_exclusive_group()
    until.add_argument("--exp", metavar="TIME", help="expiry; gates treat the list as stale from then")
    until.add_argument("--exp-days", metavar="D",
                       help=f"expiry D days (of 86400 s) after iat (default {a.DEFAULT_LIST_DAYS}, as revoke and "
                       "refresh)")
    until.add_argument("--no-exp", action="store_true", help="no exp claim (the spec makes it optional)")
    p.add_argument("--ttl", metavar="S", help="time to live in seconds, informative (default: no ttl claim)")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the token (binary CBOR)")


def _indexes(specs: list[str], file: str | None, option: str, size: int) -> set[int]:
    lines = a.index_file_lines(file, option + "-file") if file is not None else []
    return set(a.index_ranges(specs, option, size)) | set(a.index_ranges(lines, option + "-file", size))


def _cmd_status(args: argparse.Namespace) -> int:
    bits = int(a.choice(args.bits, "--bits", ("1", "2", "4", "8")))
    size = a.integer(args.size, "--size", 1, MAX_LIST_BYTES * 8 // bits)
    revoked = _indexes(args.revoked, args.revoked_file, "--revoked", size)
    suspended = _indexes(args.suspended, args.suspended_file, "--suspended", size)
    if suspended and bits < 2:
        raise AuthorityError("--suspended needs --bits 2 or more (value 2 does not fit in one bit)")
    both = revoked & suspended
    if both:
        raise AuthorityError(f"index {min(both)} is both revoked and suspended")
    ttl = None if args.ttl is None else a.integer(args.ttl, "--ttl", 0, 2**63 - 1)
    iat, exp = _times(args)
    if exp is None and not args.no_exp:
        days = a.DEFAULT_LIST_DAYS if args.exp_days is None else args.exp_days
        exp = iat + a.integer(days, "--exp-days", 1, 3650) * DAY_S
    values = dict.fromkeys(revoked, 1) | dict.fromkeys(suspended, 2)
    token = build_status_list(_load_issuer(args), uri=args.uri, size=size, values=values, iat=iat, bits=bits,
                              exp=exp, ttl=ttl)
    write_atomic(Path(args.out), token)
    _warn_born_expired(iat, exp, "status list")
    print(f"uri: {args.uri}\nentries: {size}\nrevoked: {len(revoked)}\nsuspended: {len(suspended)}\nfile: {args.out}")
    return 0


def _legacy_parser(actions: Any) -> None:
    p = _action(
        actions, "legacy-list", _cmd_legacy, "sign the legacy card list (UID-only cards, 1D barcodes)",
        "Sign the legacy card list (spec 4): for each card, SHA-256(identifier)[:16] maps to its subject "
        "and card expiry. The identifier is what the gate reads: a card UID in uppercase hex "
        "(04A1B2C3D4E5F6) or a 1D barcode text, exactly. Writes the list to --out (mode 0644) and "
        "prints the card count. " + a.TIME_HELP,
        "gate-reader authority legacy-list --issuer-key keys/issuer.key --issuer-cert keys/issuer.pem "
        "--card 04A1B2C3D4E5F6=E1234@2027-06-30T00:00:00Z --cards-file cards.csv --exp 2026-12-31T00:00:00Z "
        "--out cards.cwt",
    )
    a.add_issuer_options(p)
    p.add_argument("--card", action="append", default=[], metavar="IDENTIFIER=SUBJECT[@EXP_TIME]",
                   help="one card; repeat for several; EXP_TIME defaults to the list's --exp (whole seconds)")
    p.add_argument("--cards-file", metavar="CSV",
                   help="more cards, rows identifier,subject[,exp] (optional header row); use it for "
                   "identifiers holding '=' or subjects holding '@'")
    p.add_argument("--iat", metavar="TIME", help="issued-at (default now); gates never go back to a smaller iat")
    p.add_argument("--exp", required=True, metavar="TIME",
                   help="the list's expiry, also the expiry of cards given without one")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the list (binary CBOR)")


def _cmd_legacy(args: argparse.Namespace) -> int:
    iat, exp = a.date_or_now(args.iat, "--iat"), a.numeric_date(args.exp, "--exp")
    entries = [a.card_argument(spec, exp) for spec in args.card]
    if args.cards_file is not None:
        entries += a.cards_csv(args.cards_file, exp)
    cards: dict[str, tuple[str, int]] = {}
    for identifier, subject, card_exp in entries:
        if identifier in cards:
            raise AuthorityError(f"card {identifier!r} is listed twice")
        if a.looks_like_lower_hex(identifier):
            a.note(f"warning: {identifier!r} looks like a lowercase UID; gates look up UIDs in uppercase hex")
        cards[identifier] = (subject, card_exp)
    token = build_legacy_list(_load_issuer(args), cards=cards, iat=iat, exp=exp)
    write_atomic(Path(args.out), token)
    _warn_born_expired(iat, exp, "legacy list")
    print(f"cards: {len(cards)}\nfile: {args.out}")
    return 0
