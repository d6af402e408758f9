"""``gate-reader authority publish``, ``revoke`` and ``refresh``: the centre's side of distribution.

``publish`` puts issuer certificates, status lists, the legacy card list and gate groups'
reader policies (``policy/<group>.toml``) into a TUF repository (offline_cache.publish) that
any static web server can serve to the gates.
``revoke`` is the one command an operator runs to revoke (or suspend, or restore) a
credential: it starts from the list as published, changes the entries asked, signs it with
a newer iat and publishes it. ``refresh`` (run by a timer) signs every published list again
with a new iat, so gates never see them go stale, and renews the TUF metadata.

Whatever a command is about to publish is first checked as a gate would check it, against
what is published now (:mod:`reader.cli.gate_view`), before anything is written. A policy
is parsed by the gate's own parser (``parse_policy_toml``): one a gate would ignore is
refused here with the gate's message, and nothing is signed.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reader.cli import authority_args as a
from reader.cli.gate_view import LEGACY_TARGET, TRUST_TARGET, check_change, gate_view, n, published_view, trust_of
from reader.gate.policy_tables import MAX_POLICY_BYTES, parse_policy_toml
from reader.gate.schedules import check_name
from reader.gatepass.authority import (
    AuthorityError,
    Issuer,
    revoked_indexes,
    set_status_value,
    sign_legacy_cards,
    sign_status_list,
    status_entries,
)
from reader.gatepass.statuslist import MAX_LIST_BYTES, StatusList
from reader.gatepass.trust import TrustStore

# Before revoke read lists back from the repository it kept each list's entries in
# REPO/lists/NAME.json; such a record is checked once against the published list and then
# moved aside (the published lists, every version kept under targets/, are the record now).
STATE_DIR = "lists"
MAX_RECORD_BYTES = 256 << 20  # a record of millions of entries; refuse to slurp anything bigger
_VALUES = {"revoke": 1, "suspend": 2, "restore": 0}
# How far a published iat may be ahead of this machine's clock before revoke and refresh
# refuse: revocations within one second each take the next second, so a burst runs a few
# seconds ahead; a clock a minute behind is a wrong clock, and lists signed by it would go
# back in iat (gates keep the newer list and refuse the sync that offers an older one).
CLOCK_TOLERANCE_S = 60
# The refresh timer's period (systemd/gate-reader-refresh.timer); see the README on how it
# relates to the gates' [policy] max_age_s and the list and TUF expiry.
REFRESH_PERIOD_S = 4 * 3600
_clock = time.time  # the centre's clock; tests replace it


def add_actions(actions: Any, action: Any, load_issuer: Any) -> None:
    """Add ``publish``, ``revoke`` and ``refresh`` to the authority's actions (``action``
    builds one parser the way authority_cli does; ``load_issuer`` reads --issuer-key/-cert)."""
    p = action(
        actions, "publish", _cmd_publish, "publish certificates and lists to a TUF repository",
        "Create (--init) or update a TUF repository folder (root, targets, snapshot, timestamp metadata, "
        "python-tuf layout, consistent snapshots) holding trust/issuers.pem, status/NAME.cwt, "
        "legacy/cards.cwt and policy/GROUP.toml (the reader policy of the gates whose [gate] group is "
        "GROUP), ready for any static web server: serve REPO/public/ and nothing else (its "
        "metadata/ and targets/ are the gates' sync URLs). --init makes the four role keys under REPO/keys/ "
        "(mode 0600, beside public/, never served) and REPO/public/metadata/root.json, the file every gate "
        "pins at install. Each run signs new targets, snapshot and timestamp versions. What would be "
        "published is first checked as a gate checks it: every list must verify under the trust bundle, "
        "no two lists may share a uri, and a list replacing a published one (same uri) needs a newer iat "
        "and must keep every revoked entry; a policy must parse as a gate parses it (TOML, known keys, "
        "schedules, at most 64 KiB), or nothing is published. An empty GROUP.toml hands every rule back to "
        "the gates' own config, as --remove policy/GROUP.toml does (the gates drop it at their next sync).",
        "gate-reader authority publish --repo repo --init --trust keys/issuer.pem --status s1.cwt --policy hq.toml",
    )
    p.add_argument("--repo", required=True, metavar="DIR", help="the repository folder")
    p.add_argument("--init", action="store_true", help="create the repository and its keys first")
    p.add_argument("--trust", action="append", default=[], metavar="PEM",
                   help="issuer certificates the gates trust; all given are bundled into trust/issuers.pem")
    p.add_argument("--status", action="append", default=[], metavar="FILE",
                   help="a status list token to publish as status/<file name> (repeatable)")
    p.add_argument("--legacy", metavar="FILE", help="the legacy card list token, published as legacy/cards.cwt")
    p.add_argument("--policy", action="append", default=[], metavar="FILE",
                   help="a gate group's reader policy (TOML), published as policy/<file name>: the file name is "
                   "the group, e.g. hq.toml for the gates with [gate] group = \"hq\" (repeatable)")
    p.add_argument("--remove", action="append", default=[], metavar="TARGET",
                   help="a published target to withdraw, such as status/old.cwt or policy/hq.toml (repeatable)")
    p.add_argument("--timestamp-only", action="store_true",
                   help="only sign a new timestamp (renew its 1-day expiry); 'refresh' does that and more")
    p.set_defaults(load_issuer=load_issuer)

    p = action(
        actions, "revoke", _cmd_revoke, "revoke, suspend or restore credentials and publish at once",
        "Change entries of a published status list: start from status/NAME.cwt as published (its uri, bits, "
        "entries and ttl), change the entries given, sign it again with a newer iat and publish it with new "
        "metadata: the gates deny the credential after their next sync. The first use of a NAME creates the "
        "list and needs --uri and --size; for a published list --uri, --size and --bits may be left out, "
        "and are refused if they disagree with it. A revoked entry stays revoked: suspending or restoring it "
        "needs --unrevoke. A REPO/lists/NAME.json left by an older version is checked once (a revocation "
        "it records that the published list lacks is refused until revoked again) and moved aside.",
        "gate-reader authority revoke --repo repo --issuer-key keys/issuer.key --issuer-cert keys/issuer.pem "
        "--list s1 --idx 42",
    )
    a.add_issuer_options(p)
    p.add_argument("--repo", required=True, metavar="DIR", help="the repository folder (made by publish --init)")
    p.add_argument("--list", required=True, metavar="NAME", help="the list's name: status/NAME.cwt")
    p.add_argument("--idx", action="append", default=[], metavar="IDX[,IDX...]",
                   help="indexes to change: single, comma-separated or ranges A-B (repeatable)")
    change = p.add_mutually_exclusive_group()
    change.add_argument("--suspend", dest="change", action="store_const", const="suspend",
                        help="suspend (value 2, needs a list of 2 or more bits) instead of revoking")
    change.add_argument("--restore", dest="change", action="store_const", const="restore",
                        help="make suspended entries valid again (value 0)")
    p.add_argument("--unrevoke", action="store_true",
                   help="allow --suspend/--restore to change revoked entries (undo a mistaken revocation)")
    p.add_argument("--uri", help="the list's uri, for a new list (the credentials' --status-uri)")
    p.add_argument("--size", metavar="N", help="entries of a new list")
    p.add_argument("--bits", metavar="{1,2,4,8}", help=f"bits per entry of a new list (default {a.DEFAULT_BITS})")
    _add_exp_days(p)
    p.set_defaults(change="revoke", load_issuer=load_issuer)

    p = action(
        actions, "refresh", _cmd_refresh, "sign every published list again and renew the TUF metadata",
        "Sign every published status list and the legacy card list again with a new iat (now, and always "
        "after the published one), the same entries (cards, uri, bits, ttl) and an exp at least D days "
        "after the new iat (never earlier than the published exp), then publish them in one new set of "
        "targets, snapshot and timestamp metadata (root too once half its lifetime is gone). Gates call a "
        "list stale once it is older than their [policy] max_age_s, so a timer runs this every few hours "
        "(systemd/gate-reader-refresh.timer). Refuses, writing nothing, when the clock is more than "
        f"{CLOCK_TOLERANCE_S} s behind a published iat or a published list does not verify. Running it "
        "again is harmless; a crash leaves the previous set published.",
        "gate-reader authority refresh --repo repo --issuer-key keys/issuer.key --issuer-cert keys/issuer.pem",
    )
    a.add_issuer_options(p)
    p.add_argument("--repo", required=True, metavar="DIR", help="the repository folder (made by publish --init)")
    _add_exp_days(p)
    p.set_defaults(load_issuer=load_issuer)


def _add_exp_days(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exp-days", default=a.DEFAULT_LIST_DAYS, metavar="D",
                        help="the signed list expires at least D days after its iat (default %(default)s), "
                        "never earlier than the published exp; a published list without exp keeps none")


def _open_repository(args: argparse.Namespace) -> Any:
    from offline_cache.publish import Repository  # python-tuf loads only for these commands

    repo = Path(args.repo)
    if getattr(args, "init", False):
        return Repository.init(repo)
    if not (repo / "public" / "metadata" / "root.json").exists():
        raise AuthorityError(f"--repo {repo}: no repository there (create one with publish --init)")
    return Repository.open(repo)


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _next_iat(published: float | None, now: float, what: str) -> int:
    """The iat of a list signed now: after the published one, even within the same second
    (gates ignore an equal iat), and refused when this clock is behind the published iat."""
    now_s = math.floor(now)
    if published is None:
        return now_s
    if published > now_s + CLOCK_TOLERANCE_S:
        raise AuthorityError(
            f"{what} as published has iat {n(published)}, {n(published - now_s)} s after this machine's clock "
            f"({now_s}): a list signed now would go back in iat and gates would refuse it; set the clock right "
            "and run again")
    return max(now_s, math.floor(published) + 1)


def _renewed_exp(published: float | None, iat: int, days: int, new_list: bool = False) -> float | None:
    """exp at least ``days`` after ``iat``, never earlier than the published exp (a signing
    must not make a list stale sooner); a published list without exp stays without one."""
    if published is None and not new_list:
        return None
    renewed = iat + days * a.DAY_S
    return renewed if published is None else max(published, renewed)


def _print_versions(versions: Mapping[str, int]) -> None:
    print(f"published: targets v{versions.get('targets')}, snapshot v{versions.get('snapshot')}, "
          f"timestamp v{versions.get('timestamp')}, root v{versions.get('root')}")


# --- publish ------------------------------------------------------------------------------

def _cmd_publish(args: argparse.Namespace) -> int:
    repo = _open_repository(args)
    if args.timestamp_only:
        version = repo.refresh_timestamp()
        print(f"timestamp: version {version}")
        return 0
    staged: dict[str, bytes | None] = {}
    if args.trust:
        staged[TRUST_TARGET] = b"".join(a.read_bytes(path, "--trust") for path in args.trust)
    for path in args.status:
        staged[f"status/{Path(path).name}"] = a.read_bytes(path, "--status", MAX_LIST_BYTES)
    if args.legacy:
        staged[LEGACY_TARGET] = a.read_bytes(args.legacy, "--legacy", MAX_LIST_BYTES)
    for path in args.policy:
        target, raw = _checked_policy(path)
        if target in staged:
            raise AuthorityError(f"--policy {path}: {target} is given twice")
        staged[target] = raw
    for target in args.remove:
        staged[target] = None
    for target, data in staged.items():  # validates every path before anything is read or written
        repo.put_target(target, data) if data is not None else repo.remove_target(target)
    with repo.locked():
        now = _clock()
        contents = repo.published_contents()
        for target in args.remove:  # a name mistyped would otherwise leave the real target published
            if target not in contents:
                raise AuthorityError(f"--remove {target}: not published (published: {', '.join(contents) or 'none'})")
            if target.startswith("policy/") and contents[target].strip():
                # The signed targets.json no longer lists it: a gate's next sync drops the one it holds.
                group = target.removeprefix("policy/").removesuffix(".toml")
                a.note(f"note: {target} withdrawn: the gates of group {group!r} drop it at their next sync and "
                       "apply their own config's policy")
        new_trust = trust_of({k: v for k, v in staged.items() if v is not None}, None)
        # The published lists, as a gate holding the old or the new bundle verified them.
        before = gate_view(contents, TrustStore([*trust_of(contents, None), *new_trust]), None)
        for path, reason in before.refused.items():
            a.note(f"note: {path} as published does not verify ({reason}): not compared with what replaces it")
        after = {k: v for k, v in ({**contents, **staged}).items() if v is not None}
        check_change(before, after, now)
        versions = repo.publish(now=_utc(now))
    for role, version in sorted(versions.items()):
        print(f"{role}: version {version}")
    for target, digest in sorted(repo.targets().items()):
        print(f"target: {target} sha256:{digest[:16]}")
    print(f"serve: {Path(args.repo) / 'public'} (only that folder; the keys stay beside it)")
    print(f"pin at install: {Path(args.repo) / 'public' / 'metadata' / 'root.json'}")
    return 0


def _checked_policy(path: str) -> tuple[str, bytes]:
    """``(policy/<group>.toml, bytes)`` of a ``--policy`` file, parsed exactly as a gate parses
    the fetched target, so a policy the gates would ignore is refused here with their message.
    What only a gate knows is left to it: its own readers and schedules (a reader this file
    names that a gate lacks is skipped there; a schedule defined only in a gate's config is
    found there), so those are notes, not refusals."""
    name = Path(path).name
    group = name.removesuffix(".toml")
    try:
        if group == name:
            raise ValueError("the file name is the gate group, ending in .toml (hq.toml -> policy/hq.toml)")
        check_name(group, "the gate group (the file name without .toml)")
    except ValueError as exc:
        raise AuthorityError(f"--policy {path}: {exc}") from None
    target = f"policy/{name}"
    # Read up to the authority's input bound, so a file over the policy bound gets the gate's own message.
    raw = a.read_bytes(path, "--policy", max(a.MAX_INPUT_BYTES, MAX_POLICY_BYTES + 1))
    try:
        tables = parse_policy_toml(raw, where=f"central {target}")
    except ValueError as exc:
        raise AuthorityError(f"--policy {path}: {exc} (a gate would ignore it; nothing published)") from None
    defined = set(tables.schedules or {})
    for reader, rules in sorted(tables.readers.items()):
        given = (rules.schedule, rules.legacy_schedule, *(rules.group_schedules or {}).values())
        for schedule in sorted({s for s in given if s is not None} - defined):
            a.note(f"note: {target}: readers.{reader} names schedule {schedule!r}, not defined in this file: "
                   "a gate whose config does not define it ignores the whole policy")
    return target, raw


# --- revoke -------------------------------------------------------------------------------

def _new_orpublished(published: StatusList | None, args: argparse.Namespace) -> tuple[str, int, bytes, int | None]:
    """(uri, bits, packed entries, ttl) to start from: the published list's, or a new empty
    one from --uri, --size and --bits. Options that disagree with the published list are
    refused rather than quietly ignored or applied."""
    if published is None:
        if args.uri is None or args.size is None:
            raise AuthorityError(f"list {args.list} is not published yet: give --uri and --size to create it")
        bits = int(a.choice(args.bits or a.DEFAULT_BITS, "--bits", ("1", "2", "4", "8")))
        size = a.integer(args.size, "--size", 1, MAX_LIST_BYTES * 8 // bits)
        return args.uri, bits, bytes((size * bits + 7) // 8), None
    bits = published.bits
    given = []
    if args.uri is not None and args.uri != published.uri:
        given.append(f"--uri {args.uri} (published: {published.uri})")
    if args.bits is not None and args.bits != str(bits):
        given.append(f"--bits {args.bits} (published: {bits})")
    if args.size is not None:
        size = a.integer(args.size, "--size", 1)
        if (size * bits + 7) // 8 != len(published.data):
            given.append(f"--size {size} (published: {published.entries} entries)")
    if given:
        raise AuthorityError(f"status/{args.list}.cwt as published disagrees with {'; '.join(given)}: "
                             "leave them out to change the published list")
    return published.uri, bits, published.data, published.ttl


def _recorded_revocations(state_path: Path, uri: str) -> set[int]:
    """The revoked entries an older version's REPO/lists/NAME.json records: evidence of
    revocations that a list published over it (with that version) may have dropped."""
    if not state_path.exists():
        return set()
    try:
        state = json.loads(a.read_bytes(str(state_path), "list record", MAX_RECORD_BYTES))
        recorded_uri, values = state["uri"], state["values"]
        revoked = {int(k) for k, v in values.items() if v == 1}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AuthorityError(f"{state_path}: not a list record revoke wrote ({exc}); move it aside") from None
    if recorded_uri != uri:
        raise AuthorityError(f"{state_path} records uri {recorded_uri}, the list's is {uri}: move one aside")
    return revoked


def _cmd_revoke(args: argparse.Namespace) -> int:
    if not args.list.replace("-", "").replace("_", "").isalnum():
        raise AuthorityError(f"--list {args.list!r}: letters, digits, '-' and '_' only")
    days = a.integer(args.exp_days, "--exp-days", 1, 3650)
    value = _VALUES[args.change]
    repo = _open_repository(args)
    issuer = args.load_issuer(args)
    path, state_path = f"status/{args.list}.cwt", Path(args.repo) / STATE_DIR / f"{args.list}.json"
    with repo.locked():  # from reading the published list to publishing the new one
        now = _clock()
        before = published_view(repo, issuer, now)
        if path in before.refused:
            raise AuthorityError(f"{path} as published is refused by gates ({before.refused[path]}), so its "
                                 f"entries are not known: publish a good one (or its certificate) first")
        published = before.lists.get(path)
        uri, bits, packed, ttl = _new_orpublished(published, args)
        if value >= 1 << bits:
            raise AuthorityError(f"a {bits}-bit list cannot hold value {value} (--suspend needs 2 bits)")
        indexes = set(a.index_ranges(args.idx, "--idx", len(packed) * 8 // bits))
        if not indexes:
            raise AuthorityError("--idx: give at least one index")
        revoked = set(revoked_indexes(packed, bits))
        undone = sorted(indexes & revoked) if value != 1 else []
        if undone and not args.unrevoke:
            raise AuthorityError(f"entr{'y' if len(undone) == 1 else 'ies'} {', '.join(map(str, undone[:10]))} "
                                 f"of {uri} {'is' if len(undone) == 1 else 'are'} revoked, and a revocation is "
                                 f"final: pass --unrevoke to {args.change} a mistaken one")
        missing = _recorded_revocations(state_path, uri) - revoked - (indexes if value == 1 else set())
        if missing:
            raise AuthorityError(f"{state_path} records revoked entries that {path} as published does not revoke "
                                 f"({', '.join(map(str, sorted(missing)[:10]))}): revoke them again with --idx "
                                 f"(or move {state_path} aside if they were withdrawn on purpose)")
        data = bytearray(packed)
        for index in indexes:
            set_status_value(data, bits, index, value)
        iat = _next_iat(None if published is None else published.iat, now, path)
        exp = _renewed_exp(None if published is None else published.exp, iat, days, new_list=published is None)
        token = sign_status_list(issuer, uri=uri, bits=bits, data=bytes(data), iat=iat, exp=exp, ttl=ttl)
        new = check_change(before, {**before.contents, path: token}, now, {uri: undone})
        repo.put_target(path, token)
        versions = repo.publish(now=_utc(now))
        if state_path.exists():  # its revocations are all published now: the record has served
            state_path.replace(state_path.with_name(state_path.name + ".checked"))
            a.note(f"note: {state_path} was checked against the published list and moved to "
                   f"{state_path.name}.checked")
    counts = [sum(1 for _i, v in status_entries(new.lists[path].data, bits) if v == n) for n in (1, 2)]
    print(f"{args.change}: {len(indexes)} entr{'y' if len(indexes) == 1 else 'ies'} of {uri}")
    print(f"list: {path} iat {iat}, {counts[0]} revoked, {counts[1]} suspended")
    _print_versions(versions)
    return 0


# --- refresh ------------------------------------------------------------------------------

def _cmd_refresh(args: argparse.Namespace) -> int:
    days = a.integer(args.exp_days, "--exp-days", 1, 3650)
    repo = _open_repository(args)
    issuer = args.load_issuer(args)
    lines: list[str] = []
    with repo.locked():  # nobody publishes between reading the lists and publishing them again
        now = _clock()
        before = published_view(repo, issuer, None)
        after = dict(before.contents)
        for path, lst in sorted(before.lists.items()):
            iat = _next_iat(lst.iat, now, path)
            exp = _renewed_exp(lst.exp, iat, days)
            after[path] = sign_status_list(issuer, uri=lst.uri, bits=lst.bits, data=lst.data, iat=iat, exp=exp,
                                           ttl=lst.ttl)
            lines.append(f"{path}: iat {iat}, exp {'none' if exp is None else n(exp)}, {lst.uri}"
                         + _kid_change(lst.kid, issuer))
        if before.legacy is not None:
            legacy = before.legacy
            iat = _next_iat(legacy.iat, now, LEGACY_TARGET)
            exp = _renewed_exp(legacy.exp, iat, days)
            cards = {key: (card.sub, card.exp) for key, card in legacy.cards.items()}
            after[LEGACY_TARGET] = sign_legacy_cards(issuer, entries=cards, iat=iat, exp=exp)
            lines.append(f"{LEGACY_TARGET}: iat {iat}, exp {n(exp)}, {len(cards)} cards"
                         + _kid_change(legacy.kid, issuer))
        check_change(before, after, now)
        for path, data in after.items():
            if data != before.contents[path]:
                repo.put_target(path, data)
        versions = repo.publish(now=_utc(now))
        expiries = repo.expiries()
    print("\n".join(lines) if lines else "lists: none published; metadata renewed")
    _print_versions(versions)
    print("expires: " + ", ".join(f"{role} {when.strftime('%Y-%m-%dT%H:%M:%SZ')}"
                                   for role, when in sorted(expiries.items(), key=lambda item: item[1])))
    return 0


def _kid_change(kid: bytes, issuer: Issuer) -> str:
    return "" if kid == issuer.kid else f" (signed by kid {issuer.kid.hex()}, was {kid.hex()})"
