"""Deciding one presentation: the one way every caller turns what a source read into a
:class:`~reader.gatepass.verdict.Decision` (``gate-reader verify``, the benchmarks, the
tests, and the daemon next).

A :class:`Decider` holds the grounds of a decision (trust anchors, status lists, the
legacy card list), the reader's policy and accepted prefixes, and the credential cache that
lets a credential seen before skip its issuer check. :meth:`Decider.decide` takes a
presentation by its kind, as ``drivers.base.Presentation`` carries it (``qr``: the text as
read; ``nfc``: the bytes answered to ``challenge``; ``legacy``: a card UID or 1D barcode
text) and the clock, and returns the decision; nothing here raises for a bad credential.
:func:`gate_decider` makes the one a configured gate decides with, from its offline cache.

The work is the core's (``reader.gatepass``): this adds one dispatch on the kind and
nothing on the path of a decision, which ``gate-reader bench verify`` times through here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from reader.errors import ConfigError
from reader.gate.timeparse import check_duration
from reader.gatepass.decide import CredentialCache, decide_nfc, decide_text
from reader.gatepass.envelope import DEFAULT_PREFIXES
from reader.gatepass.legacy import LegacyList, decide_legacy
from reader.gatepass.statuslist import StatusLists
from reader.gatepass.trust import TrustStore
from reader.gatepass.verdict import Clock, Decision, Policy, ReplayMemory

if TYPE_CHECKING:  # a decision needs neither the config file nor the cache: only their contents
    from reader.gate.config import Config
    from reader.gate.state import GateState

Kind = Literal["qr", "nfc", "legacy"]
#: The policy's durations, each checked before a policy decides anything.
DURATIONS = ("window_s", "future_skew_s", "skew_s", "max_age_s")


def checked_policy(policy: Policy, where: str = "policy") -> Policy:
    """``policy`` if each duration is finite and in range; a ConfigError naming it otherwise.
    The one gate every policy passes before it decides anything, whatever made it: NaN or
    infinity would turn every comparison into "fresh" or "stale" whatever the times."""
    for name in DURATIONS:
        try:
            check_duration(getattr(policy, name), f"{where} {name}")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return policy


@dataclass
class Decider:
    """Decides presentations from fixed grounds. Make one per set of grounds and keep it:
    its credential cache is bound to ``trust`` (another trust store clears it)."""

    trust: TrustStore
    lists: StatusLists = field(default_factory=StatusLists)
    legacy: LegacyList | None = None
    policy: Policy = field(default_factory=Policy)
    prefixes: tuple[str, ...] = DEFAULT_PREFIXES
    cache: CredentialCache = field(default_factory=CredentialCache)

    def __post_init__(self) -> None:
        checked_policy(self.policy)

    def decide(
        self, kind: Kind | str, payload: str | bytes, clock: Clock, *, challenge: bytes | None = None,
        replay: ReplayMemory | None = None, policy: Policy | None = None, prefixes: Sequence[str] | None = None,
    ) -> Decision:  # fmt: skip
        """The decision on one presentation at ``clock``. ``policy`` and ``prefixes``
        replace the decider's for this one (a one-shot check that allows static passes);
        ``replay`` is the gate's replay memory (a one-shot check has none)."""
        policy = self.policy if policy is None else policy
        if kind == "qr":
            if not isinstance(payload, str):
                raise TypeError("a qr presentation's payload is the text as read")
            return decide_text(payload, clock=clock, trust=self.trust, lists=self.lists, policy=policy,
                               prefixes=self.prefixes if prefixes is None else prefixes, replay=replay,
                               cache=self.cache)  # fmt: skip
        if kind == "nfc":
            if not isinstance(payload, bytes) or challenge is None:
                raise TypeError("an nfc presentation is the bytes answered to a challenge")
            return decide_nfc(payload, challenge, clock=clock, trust=self.trust, lists=self.lists, policy=policy,
                              cache=self.cache)  # fmt: skip
        if kind == "legacy":
            if not isinstance(payload, str):
                raise TypeError("a legacy presentation's payload is the identifier text")
            return decide_legacy(payload, self.legacy, clock=clock, policy=policy)
        raise ValueError(f"unknown presentation kind {kind!r} (qr, nfc or legacy)")


def gate_decider(config: Config, state: GateState, cache: CredentialCache | None = None) -> Decider:
    """The decider of the configured gate: the trust anchors and lists of its offline cache
    (``state``), its ``[policy]`` and accepted prefixes. ConfigError names ``[policy]`` when
    a duration there is out of range."""
    policy = checked_policy(config.policy.policy(), "[policy]")
    return Decider(state.trust, state.lists, state.legacy, policy, config.policy.prefixes,
                   CredentialCache() if cache is None else cache)


def with_static(policy: Policy, allow: bool) -> Policy:
    """``policy`` allowing static passes too when ``allow`` (``verify --allow-static``)."""
    return replace(policy, allow_static=True) if allow and not policy.allow_static else policy
