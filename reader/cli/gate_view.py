"""What a gate would see of a set of published targets: the centre's side of the checks a
gate's sync makes (reader.gate.sync.verify_fetched), run by ``authority publish``,
``revoke`` and ``refresh`` before anything is written (see reader.cli.publish).

A list that gates would refuse is ignored by every gate (so a revocation in it never
arrives), and a list that drops a revocation would let a revoked credential through: both
are refused here with the reason. A bad list already published is warned about, never a
reason to hold back a change of another list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reader.cli import authority_args as a
from reader.gatepass.authority import AuthorityError, Issuer, revoked_indexes
from reader.gatepass.errors import TrustStoreError
from reader.gatepass.legacy import LegacyList, verify_legacy_token
from reader.gatepass.statuslist import StatusList, TokenRejected, verify_status_token
from reader.gatepass.trust import TrustStore, anchors_from_pem

TRUST_TARGET = "trust/issuers.pem"
LEGACY_TARGET = "legacy/cards.cwt"
GATE_SKEW_S = 300  # a gate ignores a list whose iat is further ahead of its trusted clock (spec 3)


def n(value: float) -> str:
    """An epoch time or a span in full (``:g`` would print 1800000000 as 1.8e+09)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass(frozen=True)
class GateView:
    """A set of targets as a gate syncing it would read them: the lists that verify under
    its trust bundle, by target path, and why each other one would be refused."""

    contents: dict[str, bytes]
    trust: TrustStore
    lists: dict[str, StatusList]
    legacy: LegacyList | None
    refused: dict[str, str]


def trust_of(contents: Mapping[str, bytes], fallback: TrustStore | None) -> TrustStore:
    if TRUST_TARGET not in contents:
        return fallback if fallback is not None else TrustStore()
    try:
        return TrustStore(anchors_from_pem(contents[TRUST_TARGET], TRUST_TARGET))
    except TrustStoreError as exc:
        raise AuthorityError(f"{TRUST_TARGET}: gates would refuse it: {exc}") from None


def gate_view(contents: Mapping[str, bytes], trust: TrustStore, now: float | None) -> GateView:
    """Verify each list as the gate's sync does (reader.gate.sync.verify_fetched); ``now`` is
    a clock to hold iat against (None: do not)."""
    lists: dict[str, StatusList] = {}
    refused: dict[str, str] = {}
    legacy = None
    for path, raw in sorted(contents.items()):
        try:
            if path.startswith("status/"):
                lists[path] = verify_status_token(raw, trust, now=now, skew_s=GATE_SKEW_S)
            elif path == LEGACY_TARGET:
                legacy = verify_legacy_token(raw, trust, now=now, skew_s=GATE_SKEW_S)
        except TokenRejected as exc:
            refused[path] = str(exc)
    return GateView(dict(contents), trust, lists, legacy, refused)


def check_change(before: GateView, after: Mapping[str, bytes], now: float,
                  unrevoked: Mapping[str, Iterable[int]] | None = None) -> GateView:
    """Refuse a change of the published targets that gates would refuse, or that would take
    back a revocation (``unrevoked``: uri -> indexes deliberately undone). Lists are matched
    by uri, as gates hold them."""
    new = gate_view(after, trust_of(after, before.trust), now)
    for path, reason in new.refused.items():
        # Refused: what this change writes, and a list gates took before and would drop after
        # it (a trust bundle that orphans a list). A list already published that gates ignore
        # (spec 3) must not block an unrelated revocation: that would be the centre's twin of
        # the gate's "one bad list blocks every revocation". published warns of it.
        unchanged = after[path] == before.contents.get(path)
        if unchanged and gate_view({path: after[path]}, before.trust, now).refused:
            continue  # refused already before this change: not this change's doing
        raise AuthorityError(f"{path}: gates would refuse it ({reason}) and ignore it as if absent")
    claimed: dict[str, str] = {}
    for path, lst in sorted(new.lists.items()):
        if lst.uri in claimed:
            raise AuthorityError(f"{path} and {claimed[lst.uri]} both claim uri {lst.uri}: "
                                 "gates would keep only one of them")
        claimed[lst.uri] = path
    held = {lst.uri: (path, lst) for path, lst in before.lists.items()}
    for path, lst in sorted(new.lists.items()):
        old = before.lists.get(path)
        if old is not None and old.uri != lst.uri:
            raise AuthorityError(f"{path}: published for uri {old.uri}, the new token is for {lst.uri} "
                                 f"(publish it under another name, and --remove {path} if that is meant)")
        if lst.uri not in held or held[lst.uri][1].raw == lst.raw:
            continue
        old_path, old = held[lst.uri]
        if lst.iat <= old.iat:
            raise AuthorityError(f"{path}: iat {n(lst.iat)} is not after the published {n(old.iat)} of {old_path}: "
                                 f"gates keep the list they hold (and refuse a sync with an older one)")
        allowed = set((unrevoked or {}).get(lst.uri, ()))
        lost = [i for i in revoked_indexes(old.data, old.bits) if lst.value(i) != 1 and i not in allowed]
        if lost:
            shown = ", ".join(map(str, lost[:10])) + (f" and {len(lost) - 10} more" if len(lost) > 10 else "")
            raise AuthorityError(f"{path}: entries revoked in the published list are not revoked in the new one "
                                 f"({shown}); a revocation is never withdrawn by publishing a list (undo a "
                                 f"mistaken one with 'revoke --restore --unrevoke')")
    if new.legacy is not None and before.legacy is not None and after[LEGACY_TARGET] != before.contents.get(
            LEGACY_TARGET) and new.legacy.iat <= before.legacy.iat:
        raise AuthorityError(f"{LEGACY_TARGET}: iat {n(new.legacy.iat)} is not after the published "
                             f"{n(before.legacy.iat)}: gates keep the list they hold")
    return new


def published_view(repo: Any, issuer: Issuer, now: float | None) -> GateView:
    """What is published, every list verified as gates verify it. Revoke and refresh build on
    these lists; one a gate would refuse is named in a warning and left out of ``lists``.
    ``now``: the clock to hold iats against (revoke: a list ahead of it is someone else's
    problem), or None (refresh: a clock behind a published iat is refused by _next_iat, loudly,
    since every list it signed would go back)."""
    contents = repo.published_contents()
    fallback = None
    if TRUST_TARGET not in contents:
        a.note(f"note: the repository publishes no {TRUST_TARGET}: lists are checked against --issuer-cert "
               "alone, and gates need that certificate installed")
        fallback = TrustStore(anchors_from_pem(issuer.certificate_pem, "--issuer-cert"))
    view = gate_view(contents, trust_of(contents, fallback), now)
    for path, reason in view.refused.items():
        # Warned, not refused: gates ignore such a list, and a revocation of another list must
        # still go out. A change of this very list is refused by its caller (its entries are
        # not known); refresh leaves it as it is.
        a.note(f"warning: {path} as published is refused by gates ({reason}): publish a good one "
               f"or the certificate that signed it; left as it is")
    return view
