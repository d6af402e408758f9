"""Argument parsing and file helpers for ``gate-reader authority`` (see :mod:`reader.cli.authority`).

Every value a person types (a time, a hex string, an index range, a card entry) is checked
here and refused with an :class:`AuthorityError` whose message names the option and quotes
the text, so the command can print one line and exit 2 instead of a traceback. Outputs
other than private keys are written atomically: a gate syncing a folder must never read a
half-written status list.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import re
import sys
import textwrap
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import cbor2
from cryptography.hazmat.primitives import serialization

from offline_cache.files import atomic_output, write_private
from reader.cli.logs import command_logger
from reader.gate.timeparse import parse_time
from reader.gatepass.authority import AuthorityError, qr_png
from reader.gatepass.envelope import DEFAULT_PREFIXES, MAX_TEXT_CHARS, seal_text
from reader.gatepass.files import read_limited

PROG = "gate-reader authority"
MAX_NUMERIC_DATE = 2**63 - 1
MAX_INPUT_BYTES = 1 << 20  # a credential is a few hundred bytes; refuse to slurp a wrong big file
# One default for every command that signs a status list (status-list, revoke, refresh), so a
# list keeps its shape whichever command signed it last: 2 bits per entry (valid, revoked and
# suspended all fit) and an exp 7 days after iat (comfortably more than two refresh periods).
DEFAULT_BITS = "2"
DEFAULT_LIST_DAYS = "7"
DAY_S = 86_400
TIME_HELP = "TIME is epoch seconds (1798761600) or ISO 8601 with a zone (2027-01-01T00:00:00Z, ...+09:00)."

OVERVIEW = """\
Typical use (a demo or a pilot site):
  gate-reader authority issuer --alg ES256 --out keys
  gate-reader authority holder --alg ES256 --out keys/alice.key
  gate-reader authority issue --issuer-key keys/issuer.key --issuer-cert keys/issuer.pem \\
      --holder keys/alice.key --sub E1234 --days 365 --status-uri https://pki.example/s1 \\
      --status-idx 7 --out alice.cwt
  gate-reader authority present --holder keys/alice.key --credential alice.cwt --png alice.png
  gate-reader authority status-list --issuer-key keys/issuer.key --issuer-cert keys/issuer.pem \\
      --uri https://pki.example/s1 --size 1024 --revoked 3,10-12 --out s1.cwt

Gates trust keys/issuer.pem (put it in their trust file). """ + TIME_HELP + """

Private keys are unencrypted PEM files with mode 0600: fine for tests and pilots, not for
production issuance. Other outputs are written atomically (temporary file, then rename), mode 0644.
Results go to stdout as 'label: value' lines (the QR text or NFC hex alone, on one line);
notes, warnings and errors go to stderr. Keys and credentials are never printed.
Run 'gate-reader authority ACTION --help' for each action's options.

Exit status: 0 done; 2 bad argument, unreadable input or refused overwrite (one line on stderr)."""

_TAG_SIGN1 = 18
_TAG_CWT = 61
_LOWER_HEX = re.compile(r"[0-9a-f]*[a-f][0-9a-f]*")


def fail_line(message: str) -> int:
    """Print the one error line of an argparse usage error and return exit status 2, as
    reader.cli does for every other error of the command: through the entry point's logging
    (``gate-reader authority: error: ...``), so that under systemd the journal files it as
    an error, not at info."""
    command_logger("authority").error("%s", " ".join(message.split()))
    return 2


def note(message: str) -> None:
    """A remark for the operator on stderr; stdout stays machine-readable."""
    print(f"{PROG}: {message}", file=sys.stderr)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (``gate-reader authority: error:
    ...``) with exit status 2, like every other error of the command; scripts at a pilot
    site grep for that line rather than parse a usage block."""

    def error(self, message: str) -> NoReturn:
        fail_line(f"{message} (see '{self.prog} --help')")
        raise SystemExit(2)


class HelpFormatter(argparse.HelpFormatter):
    """Wraps prose to the terminal but keeps indented lines (example commands, with their
    backslash continuations) exactly as written, so an example can be pasted into a shell."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out: list[str] = []
        prose: list[str] = []

        def flush() -> None:
            if prose:
                out.append(textwrap.fill(" ".join(prose), width, initial_indent=indent, subsequent_indent=indent))
                prose.clear()

        for line in text.splitlines():
            if line.startswith(" ") or not line.strip():
                flush()
                out.append(indent + line if line.strip() else "")
            else:
                prose.append(" ".join(line.split()))
        flush()
        return "\n".join(out)


def example_block(command: str, width: int = 78) -> str:
    """An epilog ``example:`` block: the command broken before its options into shell
    continuation lines that fit ``width`` (kept verbatim by :class:`HelpFormatter`)."""
    pieces = command.replace(" --", "\0--").split("\0")
    lines = ["  " + pieces[0]]
    for piece in pieces[1:]:
        if len(lines[-1]) + 1 + len(piece) + 2 <= width:
            lines[-1] += " " + piece
        else:
            lines[-1] += " \\"
            lines.append("      " + piece)
    return "example:\n" + "\n".join(lines)


def one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Give a parser made by someone else's ``add_parser`` the one-line error format."""

    def error(message: str) -> NoReturn:
        fail_line(f"{message} (see '{parser.prog} --help')")
        raise SystemExit(2)

    parser.error = error  # type: ignore[method-assign]


def now() -> int:
    """The current time in whole epoch seconds (what a holder app would put in iat)."""
    return int(time.time())


def numeric_date(text: str, option: str) -> int | float:
    """A TIME argument as a CWT NumericDate: whole seconds become an int (so the CBOR holds
    an integer, as most issuers write it), the range is RFC 8392's 0 .. 2^63 - 1."""
    try:
        value = parse_time(text)
    except ValueError as exc:
        raise AuthorityError(f"{option}: {exc}") from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not 0 <= value <= MAX_NUMERIC_DATE:
        raise AuthorityError(f"{option}: time {text!r} is outside 1970 .. 2^63-1 epoch seconds")
    return value


def date_or_now(text: str | None, option: str) -> int | float:
    """A TIME argument that defaults to now (iat of a credential, list or presentation)."""
    return now() if text is None else numeric_date(text, option)


def integer(text: str, option: str, minimum: int = 0, maximum: int | None = None) -> int:
    """A decimal integer argument within ``minimum .. maximum``."""
    try:
        value = int(text, 10)
    except (TypeError, ValueError):
        raise AuthorityError(f"{option}: {text!r} is not a whole number") from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f" and at most {maximum}"
        raise AuthorityError(f"{option}: {value} must be at least {minimum}{upper}")
    return value


def choice(text: str, option: str, options: Iterable[str]) -> str:
    """One of ``options``; checked here rather than by argparse so that a bad value is an
    ordinary error (exit 2 from the handler) like a bad time or a bad hex string."""
    options = list(options)
    if text not in options:
        raise AuthorityError(f"{option}: {text!r} is not one of {', '.join(options)}")
    return text


def hex_bytes(text: str, option: str, *, size: int | None = None, low: int = 1, high: int | None = None) -> bytes:
    """A hex argument (spaces and a ``0x`` prefix tolerated) of exactly ``size`` bytes, or
    of ``low .. high`` bytes."""
    cleaned = "".join(text.split())
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    try:
        data = bytes.fromhex(cleaned)
    except ValueError:
        raise AuthorityError(f"{option}: {text!r} is not hex") from None
    given = f"{len(data)} byte{'' if len(data) == 1 else 's'} given"
    if size is not None and len(data) != size:
        raise AuthorityError(f"{option}: {given}, {size} bytes ({2 * size} hex digits) needed")
    if len(data) < low or (high is not None and len(data) > high):
        span = f"{low}..{high}" if high is not None else f"at least {low}"
        raise AuthorityError(f"{option}: {given}, {span} bytes needed")
    return data


def index_ranges(specs: Iterable[str], option: str, size: int) -> Iterator[int]:
    """Indexes from ``IDX``, ``IDX,IDX`` and ``A-B`` (inclusive) items; each bound is
    checked against the list size before a range is expanded, so a typo cannot ask for
    billions of entries."""
    for spec in specs:
        for item in spec.split(","):
            item = item.strip()
            if not item:
                continue
            first, dash, last = item.partition("-")
            start = integer(first.strip(), option, 0)
            end = integer(last.strip(), option, 0) if dash else start
            if end < start:
                raise AuthorityError(f"{option}: range {item!r} runs backwards")
            if end >= size:
                raise AuthorityError(f"{option}: index {end} is outside a list of {size} entries (0..{size - 1})")
            yield from range(start, end + 1)


def index_file_lines(path: str, option: str) -> list[str]:
    """The index items of a file: one ``IDX`` or ``A-B`` per line; blank lines and ``#``
    comments are skipped (a revocation export often carries a header comment)."""
    text = read_bytes(path, option).decode("utf-8", errors="replace")
    return [line.split("#", 1)[0] for line in text.splitlines()]


def read_bytes(path: str, option: str, limit: int = MAX_INPUT_BYTES) -> bytes:
    return read_limited(path, limit, f"{option}: {path}", AuthorityError)


def read_credential(path: str, option: str = "--credential") -> tuple[bytes, dict[Any, Any]]:
    """The exact bytes of a COSE_Sign1 credential file and its payload map, decoded with
    cbor2 (independently of the gate's parser); refuses a file that is not one, such as a
    PEM key passed by mistake."""
    data = read_bytes(path, option)
    try:
        item = cbor2.loads(data)
        if isinstance(item, cbor2.CBORTag) and item.tag == _TAG_CWT:
            item = item.value
        if isinstance(item, cbor2.CBORTag) and item.tag == _TAG_SIGN1:
            item = item.value
        # cbor2 >= 6 decodes what a tag holds as a tuple, older versions as a list.
        if not (isinstance(item, (list, tuple)) and len(item) == 4 and isinstance(item[2], bytes)):
            raise ValueError("not a COSE_Sign1 array")
        payload = cbor2.loads(item[2])
        if not isinstance(payload, dict):
            raise ValueError("its payload is not a CBOR map")
    except (ValueError, cbor2.CBORDecodeError, RecursionError) as exc:
        raise AuthorityError(f"{option}: {path} is not a GatePass credential ({exc})") from None
    return data, payload


def pem_private(private_key: Any) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def refuse_existing(paths: Iterable[Path], force: bool) -> None:
    if force:
        return
    for path in paths:
        if path.exists() or path.is_symlink():
            raise AuthorityError(f"{path} already exists: pass --force to replace it")


def write_key(path: Path, data: bytes, force: bool) -> None:
    """Write a private key with mode 0600 (offline_cache.files). Without ``force`` a key
    that appeared since :func:`refuse_existing` looked is not clobbered either."""
    try:
        write_private(path, data, replace=force)
    except FileExistsError:
        raise AuthorityError(f"{path} already exists: pass --force to replace it") from None


def card_expiry(value: int | float) -> int:
    """Legacy list entries carry an integer exp (spec 4): a fraction is rounded down, so
    the card never lasts longer than asked."""
    return math.floor(value)


def looks_like_lower_hex(identifier: str) -> bool:
    """A UID typed in lowercase hex will never match: the gate looks up uppercase hex."""
    return bool(_LOWER_HEX.fullmatch(identifier)) and len(identifier) % 2 == 0 and len(identifier) >= 8


def card_argument(spec: str, default_exp: int | float) -> tuple[str, str, int]:
    """``IDENTIFIER=SUBJECT[@EXP_TIME]`` as (identifier, subject, card exp)."""
    identifier, equals, rest = spec.partition("=")
    if not equals or not identifier or not rest:
        raise AuthorityError(f"--card: {spec!r} is not IDENTIFIER=SUBJECT[@EXP_TIME]")
    subject, at, when = rest.rpartition("@")
    if not at:
        return identifier, rest, card_expiry(default_exp)
    if not subject:
        raise AuthorityError(f"--card: {spec!r} has no subject before '@'")
    return identifier, subject, card_expiry(numeric_date(when, f"--card {identifier}"))


def cards_csv(path: str, default_exp: int | float) -> list[tuple[str, str, int]]:
    """Rows ``identifier,subject[,exp]`` of a CSV file; a first row naming the columns is
    skipped, an empty exp means the list's --exp."""
    try:
        text = read_bytes(path, "--cards-file").decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AuthorityError(f"--cards-file {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    cards = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        if number == 1 and [c.lower() for c in cells[:2]] == ["identifier", "subject"]:
            continue
        if len(cells) not in (2, 3) or not cells[0] or not cells[1]:
            raise AuthorityError(f"--cards-file {path}, line {number}: expected identifier,subject[,exp]")
        exp = default_exp
        if len(cells) == 3 and cells[2]:
            exp = numeric_date(cells[2], f"--cards-file {path}, line {number}")
        cards.append((cells[0], cells[1], card_expiry(exp)))
    return cards


# --- options and outputs shared by several actions ------------------------------------------

_COMPRESS = {"auto": None, "yes": True, "no": False}


def add_issuer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--issuer-key", required=True, metavar="FILE",
                        help="the issuer's private key (PEM, from 'authority issuer')")
    parser.add_argument("--issuer-cert", required=True, metavar="FILE",
                        help="the issuer's certificate (PEM) holding the same public key; its kid goes in the header")


def add_holder_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--holder", required=True, metavar="FILE", help="the holder private key the credential binds")
    parser.add_argument("--credential", required=True, metavar="FILE", help="the credential (from 'authority issue')")
    parser.add_argument("--at", metavar="TIME", help="the holder's clock: the presentation iat (default now)")


def add_qr_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", default=DEFAULT_PREFIXES[0],
                        help="text before the base45 data; must be one the gate accepts (default %(default)s)")
    parser.add_argument("--compress", default="auto", metavar="{auto,yes,no}",
                        help="zlib before base45; auto only where it makes the code shorter (default auto)")
    parser.add_argument("--png", metavar="FILE",
                        help="also write the QR code as a PNG image (mode 0644); stdout keeps the text alone")
    parser.add_argument("--scale", default="4", metavar="N",
                        help="PNG pixels per QR module, 1..100 (default 4); the quiet zone is 4 modules")


def seal(args: argparse.Namespace, cose: bytes) -> str:
    """The QR text of COSE bytes, per --prefix and --compress."""
    if "\n" in args.prefix or "\r" in args.prefix:
        raise AuthorityError("--prefix: a prefix cannot contain a line break")
    text = seal_text(cose, args.prefix, _COMPRESS[choice(args.compress, "--compress", _COMPRESS)])
    if len(text) > MAX_TEXT_CHARS:
        note(f"warning: {len(text)} characters: gates refuse texts over {MAX_TEXT_CHARS} (too_large)")
    return text


def write_png(text: str, path: str, scale_text: str) -> None:
    """The QR code as a PNG, written atomically (segno picks the format by the suffix, so
    the temporary file ends in .png too)."""
    scale = integer(scale_text, "--scale", 1, 100)
    target = Path(path)
    with atomic_output(target, suffix=".png") as tmp:
        qr_png(text, tmp, scale)
    note(f"wrote {target}")
