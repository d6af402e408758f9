"""The one decision worker: every presentation of every source, every door input, the
periodic level read, the timers and every control request go through this one thread, in
order, so the door state machine and the relay see one sequence and never a race.

Per presentation: the store's change marker (a sync landed: new lists, trust or the centre's
policy) -> ``Decider.decide`` with the gate's shared replay memory -> the reader's policy
(``policy.authorize``) -> the journal (durable, ``synchronous=FULL``) -> the door machine ->
``DoorIO``.

Decisions:

- **Record before release.** A grant is appended to the journal, with its replay pair in
  the same transaction, BEFORE the door machine is told and the relay moves: a crash in
  between leaves a record without a release, never a release without a record. A grant
  that cannot be recorded (disk full, a broken database) does not release; it is denied on
  the spot, logged at error and counted. Securing actions (``Secure``, the fire hold) run
  before anything is written: securing is always safe, and fire must not wait for a disk.
  An exit request releases even when the journal fails: an exit is never blocked.
- **Replay across readers.** The replay memory is the store's, shared by every reader of
  the gate, so a QR shown to two readers within the window grants once. A pair is kept only
  once the reader's policy granted too: a code refused by one reader's schedule stays usable
  at the reader where its holder is allowed.
- **Urgent first.** Door inputs and control requests are taken before presentations, so a
  fire input never waits behind a queue of codes. Presentations are bounded
  (``[daemon] queue_size``); past it they are dropped, counted and logged (a source reading
  faster than the gate decides is flooding it), never blocking a source thread.
- **Liveness.** The worker pings systemd's watchdog from its own loop, only while the source
  loops are healthy too (``SourceSet.healthy``); a wedged worker stops pinging, and the
  door's own timer has already secured a released door.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from drivers.base import Presentation
from drivers.door import DoorIO, Indicators, InputEvent
from offline_cache.errors import StoreError
from offline_cache.journal import Journal
from offline_cache.store import Store
from reader.daemon.health import write_health
from reader.gate.clock import TimeSource, gate_clock
from reader.gate.config import Config
from reader.gate.deciding import Decider, gate_decider
from reader.gate.door_machine import Action, DoorMachine, HoldReleased, Indicate, Record, Release, Secure
from reader.gate.metrics import DecisionMetrics
from reader.gate.policy import PassbackMemory, SitePolicy, authorize, gatepass_policy
from reader.gate.state import GateState, reload_if_changed, site_with_central
from reader.gatepass.verdict import CHECKS, Decision, Policy

log = logging.getLogger(__name__)

LOCKDOWN_KEY = "daemon_lockdown"  # the lockdown holders set from the command line, kept over restarts


@dataclass
class Reply:
    """A control request's answer, filled by the worker."""

    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: str | None = None

    def wait(self, timeout: float) -> Any:
        if not self.done.wait(timeout):
            raise TimeoutError(f"the decision worker did not answer within {timeout:g} s")
        if self.error is not None:
            raise RuntimeError(self.error)
        return self.result


@dataclass
class Request:
    action: str
    args: dict[str, Any]
    reply: Reply = field(default_factory=Reply)


class _HeldReplay:
    """The store's replay memory, remembering a granted pair only when told to (after the
    reader's policy granted too), inside the grant's journal transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.pending: tuple[bytes, bytes, float] | None = None

    def seen(self, cti: bytes, nonce: bytes, now: float) -> bool:
        return self.store.replay_seen(cti, nonce, now)

    def remember(self, cti: bytes, nonce: bytes, keep_until: float) -> None:
        self.pending = (cti, nonce, keep_until)


class Pipeline:
    """The decision worker; see the module's decisions. ``handlers`` are control request
    handlers the daemon adds (``status``); each runs in the worker thread."""

    def __init__(self, config: Config, store: Store, state: GateState, door: DoorIO, machine: DoorMachine,
                 clock: TimeSource, *, sources_health: Callable[[], dict[str, Any]] = dict,
                 sources_healthy: Callable[[float], bool] = lambda now: True,
                 ping: Callable[[], Any] = lambda: None, ping_interval_s: float | None = None) -> None:
        self.config = config
        self.store = store
        self.journal = Journal(store)
        self.door = door
        self.machine = machine
        self.clock = clock
        self.state = state
        self.base_policy: Policy = config.policy.policy()
        self.decider: Decider = gate_decider(config, state)
        self.site: SitePolicy = config.site
        self.local_site: SitePolicy = config.site
        self.policies: dict[str, Policy] = {}
        self.policy_problem: str | None = None
        self.passback = PassbackMemory(reset_s=config.site.passback_reset_s)
        self.sources_health = sources_health
        self.sources_healthy = sources_healthy
        self._ping = ping
        self.ping_interval_s = ping_interval_s
        self.handlers: dict[str, Callable[[dict[str, Any]], Any]] = {}
        self._cond = threading.Condition()
        self._urgent: deque[InputEvent | Request] = deque()
        self._waiting: deque[Presentation] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.crashed: BaseException | None = None
        self.beat = time.monotonic()  # real time: the watchdog's, not the injectable clock's
        now = clock.monotonic()
        self._next_levels = self._next_health = now
        self._last_ping = -1e18
        self.counts = {"grant": 0, "deny": 0, "dropped": 0, "journal_failures": 0}
        self.metrics = DecisionMetrics(reader.name for reader in config.readers)  # the metrics textfile's
        self.group = config.gate.group  # whose central policy applies; SIGHUP may change it
        self.apply_site(site_with_central(store, config.site, self.group))

    # -- feeding the worker (any thread) ------------------------------------------------

    def submit_presentation(self, presentation: Presentation) -> None:
        with self._cond:
            if len(self._waiting) >= self.config.daemon.queue_size:
                self.counts["dropped"] += 1
                log.warning("reader %s: presentation dropped, %d already waiting (dropped so far: %d)",
                            presentation.source, len(self._waiting), self.counts["dropped"])
                return
            self._waiting.append(presentation)
            self._cond.notify()

    def submit_input(self, event: InputEvent) -> None:
        with self._cond:
            self._urgent.append(event)
            self._cond.notify()

    def request(self, action: str, **args: Any) -> Reply:
        request = Request(action, args)
        with self._cond:
            self._urgent.append(request)
            self._cond.notify()
        return request.reply

    # -- the thread -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="decision-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                item = self._next(0.05)
                self.beat = time.monotonic()
                if item is not None:
                    self.handle(item)
                self.service()
        except BaseException as exc:  # a bug: stop pinging, let the daemon secure and exit
            self.crashed = exc
            log.critical("the decision worker failed; the daemon stops", exc_info=True)

    def _next(self, timeout: float) -> InputEvent | Request | Presentation | None:
        with self._cond:
            if not self._urgent and not self._waiting and not self._stop.is_set():
                self._cond.wait(timeout)
            if self._urgent:
                return self._urgent.popleft()
            if self._waiting:
                return self._waiting.popleft()
        return None

    def handle(self, item: InputEvent | Request | Presentation) -> None:
        if isinstance(item, Presentation):
            self.handle_presentation(item)
        elif isinstance(item, InputEvent):
            # The edge's own time, moved onto the injectable clock.
            at = self.clock.monotonic() - max(0.0, time.monotonic() - item.at)
            self.apply(self.machine.input(item.input, item.active, at))
        else:
            self._handle_request(item)

    def service(self) -> None:
        """The passing of time: the change marker, timers, level reads, health, watchdog."""
        self.refresh()
        now = self.clock.monotonic()
        self.apply(self.machine.tick(now))
        if now >= self._next_levels:
            self._next_levels = now + self.config.daemon.level_poll_s
            # read_inputs() hands an edge that was missed to the debounce (its event
            # follows); the machine is reconciled with the DEBOUNCED levels, so a glitch that
            # a read happens to catch is never taken for a change (a fire glitch would hold
            # every lock released). What it still heals: a debounced change whose event was lost.
            self.door.read_inputs()
            self.apply(self.machine.levels(self.door.state().inputs, now))
        if now >= self._next_health:
            self._next_health = now + self.config.daemon.health_interval_s
            write_health(self.store, self.health())
        real = time.monotonic()
        interval = self.ping_interval_s
        if interval is not None and real - self._last_ping >= interval and self.sources_healthy(real):
            self._last_ping = real
            self._ping()

    # -- the store's change marker ----------------------------------------------------------

    def refresh(self) -> None:
        """A sync that committed since: new grounds (and the centre's policy) from now on."""
        state = reload_if_changed(self.store, self.state, self.config.gate.trust)
        if state is self.state:
            return
        changed = state.generation != self.state.generation
        self.state = state
        if changed:
            self.decider = gate_decider(self.config, state)
            self.apply_site(site_with_central(self.store, self.local_site, self.group))
            log.info("cache generation %s: new lists, trust or policy in use (policy: %s)", state.generation,
                     self.site.origin)
            for problem in state.problems:
                log.warning("cache: %s", problem)

    def apply_site(self, site_and_problem: tuple[SitePolicy, str | None]) -> None:
        site, problem = site_and_problem
        if problem is not None and problem != self.policy_problem:
            log.error("policy: %s", problem)
        self.policy_problem = problem
        self.site = site
        self.policies = {name: gatepass_policy(self.base_policy, reader) for name, reader in site.readers.items()}

    # -- one presentation -------------------------------------------------------------------

    def handle_presentation(self, p: Presentation) -> Decision:
        self.refresh()
        wall, now = self.clock.time(), self.clock.monotonic()
        reader = self.site.readers.get(p.source)
        replay = _HeldReplay(self.store)
        if reader is None:  # a source the policy does not know: fail closed
            decision = Decision(False, "not_authorized", dict.fromkeys(CHECKS, "skipped"),
                                detail=f"reader {p.source} has no policy")
        else:
            clock = gate_clock(wall, self.state.time_floor, self.base_policy.skew_s)
            try:
                decision = self.decider.decide(p.kind, p.payload, clock, challenge=p.challenge, replay=replay,
                                               policy=self.policies[p.source])
            except (TypeError, ValueError) as exc:  # a source handed a wrong shape: a bug, said once
                log.error("reader %s: cannot decide a %s presentation: %s", p.source, p.kind, exc)
                decision = Decision(False, "malformed", dict.fromkeys(CHECKS, "skipped"), detail=str(exc))
            if decision.granted:
                decision = authorize(decision, reader_name=p.source, reader=reader, kind=p.kind,
                                     groups=() if p.kind == "legacy" else decision.groups, site=self.site,
                                     local_time=self.site.local_time(wall), lockdown=self.machine.lockdown,
                                     passback=self.passback, now=now)
        record = {"time": wall, "kind": "decision", "reader": p.source,
                  "decision": "grant" if decision.granted else "deny", "reason": decision.reason,
                  "subject": decision.subject, "credential_hash": decision.credential_hash, "detail": decision.detail}
        pending = replay.pending if decision.granted else None
        also = None if pending is None else (lambda conn: Store.remember_in(conn, *pending))
        if not self._append([record], also) and decision.granted:
            log.error("reader %s: grant NOT carried out: the journal could not record it", p.source)
            decision = Decision(False, "not_authorized", decision.checks, decision.subject, decision.issuer,
                                decision.kid, decision.assurance, decision.credential_id,
                                "the journal could not record the grant", decision.warnings, decision.groups)
        if decision.granted:
            self.apply(self.machine.grant(now), recorded=True)
            if reader is not None and reader.area is not None and reader.direction is not None \
                    and decision.subject is not None:
                self.passback.record(decision.subject, reader.area, reader.direction, now)
        else:
            self.apply(self.machine.deny(now))
        self.counts["grant" if decision.granted else "deny"] += 1
        latency_ms = (time.monotonic() - p.read_at) * 1000  # measured, not decided: the real clock
        self.metrics.observe(p.source, decision.granted, decision.reason, latency_ms / 1000)
        log.info("decision reader=%s kind=%s decision=%s reason=%s credential=%s latency_ms=%.1f%s", p.source,
                 p.kind, record["decision"], decision.reason, decision.credential_hash or "-", latency_ms,
                 f" detail={decision.detail!r}" if decision.detail else "")
        return decision

    # -- actions and the journal ----------------------------------------------------------------

    def _append(self, records: list[dict[str, Any]], also: Callable[[Any], None] | None = None) -> bool:
        if not records and also is None:
            return True
        try:
            self.journal.append_many(records, also)
        except (StoreError, ValueError) as exc:
            self.counts["journal_failures"] += 1
            log.error("journal: cannot append %d records: %s", len(records), exc)
            return False
        return True

    def apply(self, actions: list[Action], *, recorded: bool = False, by: str | None = None) -> None:
        """Carry out the door machine's actions: securing first, then the records, then
        releases (a grant's only when ``recorded``: its decision record is already in; an
        exit's whatever the journal says), then indicators."""
        if not actions:
            return
        for action in actions:
            if isinstance(action, Secure):
                self.door.secure()
            elif isinstance(action, HoldReleased):
                self.door.hold_released(action.on)
        records = [a for a in actions if isinstance(a, Record)]
        wall = self.clock.time()
        ok = self._append([{"time": wall, "kind": "door", "reader": None, "decision": None, "reason": r.event,
                            "detail": r.detail + (f" ({by})" if by else "")} for r in records])
        for action in actions:
            if isinstance(action, Release):
                exit_release = any(r.event == "released_by_exit" for r in records)
                if recorded or exit_release or ok:
                    self.door.release(action.seconds)
                else:
                    log.error("door: release NOT carried out: the journal could not record it")
            elif isinstance(action, Indicate) and action.overlay in self.door.settings.overlays:
                self.door.indicate(action.overlay)
        for r in records:
            level = logging.WARNING if r.alarm else logging.INFO
            log.log(level, "door %s: %s", r.event, r.detail)
        if any(r.event in ("lockdown_on", "lockdown_off") for r in records):
            self._show_lockdown()  # whoever changed it: the command line, or the lockdown input

    # -- control requests ----------------------------------------------------------------------

    def _handle_request(self, request: Request) -> None:
        try:
            request.reply.result = self.run_request(request.action, request.args)
        except Exception as exc:
            request.reply.error = str(exc) or type(exc).__name__
        finally:
            request.reply.done.set()

    def run_request(self, action: str, args: dict[str, Any]) -> Any:
        now = self.clock.monotonic()
        if action == "lockdown":
            by = str(args["by"])
            self.apply(self.machine.set_lockdown(bool(args["on"]), by, now), by=args.get("who"))
            self._keep_lockdown()
            self._show_lockdown()
            return {"lockdown": self.machine.lockdown, "by": self.machine.snapshot()["lockdown_by"]}
        if action == "release":
            if not self._append([{"time": self.clock.time(), "kind": "system", "reason": "door_diagnostic",
                                  "detail": f"release requested by {args['by']}"}]):
                raise RuntimeError("the journal could not record the release: not carried out")
            self.apply(self.machine.grant(now), recorded=True)
            return {"released": True}
        if action == "indicate":
            self.door.indicate(str(args["overlay"]))
            return {"indicated": args["overlay"]}
        if action == "reload":
            self.reload(args.get("site"), args.get("group", self.group))
            return {"policy_origin": self.site.origin}
        if action == "wedge":  # test hook (mock pins only): the worker stops turning
            time.sleep(float(args["seconds"]))
            return {"wedged_s": float(args["seconds"])}
        handler = self.handlers.get(action)
        if handler is None:
            raise ValueError(f"unknown request {action!r}")
        return handler(args)

    def _keep_lockdown(self) -> None:
        holders = [h for h in self.machine.snapshot()["lockdown_by"] if h != "input"]
        try:
            self.store.put_json(LOCKDOWN_KEY, holders)
        except (StoreError, ValueError) as exc:
            log.error("lockdown: cannot keep it over a restart: %s", exc)

    def restore_lockdown(self) -> None:
        held = self.store.get_json(LOCKDOWN_KEY, [])
        for by in held if isinstance(held, list) else []:
            if isinstance(by, str) and by:
                self.apply(self.machine.set_lockdown(True, by[:64], self.clock.monotonic()), by="restored at start")
        self._show_lockdown()

    def _show_lockdown(self) -> None:
        self.door.set_base(Indicators(red=self.machine.lockdown))

    def reload(self, local: SitePolicy | None, group: str | None) -> None:
        """SIGHUP: the local policy (when the config was read again), the gate's group as
        the config now names it, and the centre's policy for that group."""
        if local is not None:
            self.local_site = local
            self.passback.reset_s = local.passback_reset_s
        self.group = group
        self.apply_site(site_with_central(self.store, self.local_site, self.group))
        log.info("policy reloaded: %s", self.site.origin)

    # -- health ----------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        state = self.door.state()
        door = {**self.machine.snapshot(), "relay_released": state.released, "fire_hold": state.fire_hold,
                "inputs": state.inputs, "events_dropped": state.events_dropped}
        return {
            "at": self.clock.time(), "sources": self.sources_health(), "door": door,
            "lockdown": self.machine.lockdown, "decisions": dict(self.counts), "policy_origin": self.site.origin,
            "policy_problem": self.policy_problem, "generation": self.state.generation,
            "queue": len(self._waiting),
        }
