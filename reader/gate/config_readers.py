"""The ``[[readers]]`` entries and the local reader policy (``[schedules.*]``, ``[holidays]``,
``[lockdown]``, ``[gate] timezone``, ``[policy] passback``):

    [[readers]]
    name = "lobby-nfc"                 # letters, digits, _ . - (journal, logs, policy)
    driver = "nfc"                     # nfc, camera, scanner or wiegand
    device = "usb:072f:2200"           # nfc: an nfcpy path; camera: an index, a device or a
                                       # file; scanner: a serial port; wiegand: [D0, D1] pins
    kinds = ["nfc"]                    # the reader's policy: kinds, groups, schedule,
    groups = ["staff"]                 # group_schedules, legacy_schedule (the centre may
    schedule = "office"                # override these), static_passes, legacy_cards,
    direction = "in"                   # direction and area (local only)
    area = "building"
    exchange_timeout_s = 1.0           # any other key goes to the driver

The policy keys are parsed here with the same parser the centre's policy file goes through
(:func:`reader.gate.policy.parse_policy_tables`), so both accept and refuse the same things.
The driver keys are kept as given: the daemon hands them to the driver class and checks them
against its signature there (``readers[2].foo: unknown key``), since importing a driver
(OpenCV, nfcpy) has no place in ``sync`` or ``verify --config``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from drivers.registry import SOURCES
from reader.errors import ConfigError
from reader.gate.config_table import ConfigErrors, Table, collecting
from reader.gate.policy import ReaderPolicy, SitePolicy, parse_policy_tables
from reader.gate.policy_tables import READER_RULE_KEYS
from reader.gate.schedules import check_name

MAX_READERS = 32
#: the keys every reader has; anything else is the driver's
GENERIC_KEYS = ("name", "driver", "device", *READER_RULE_KEYS, "static_passes", "legacy_cards", "direction", "area")
#: the kinds a driver can present (a reader admits at most these)
DRIVER_KINDS: Mapping[str, frozenset[str]] = MappingProxyType({
    "nfc": frozenset({"nfc", "legacy"}),
    "camera": frozenset({"qr"}),
    "scanner": frozenset({"qr", "legacy"}),
    "wiegand": frozenset({"legacy"}),
})


@dataclass(frozen=True)
class ReaderConfig:
    index: int  # its place in [[readers]]: key paths name it readers[index]
    name: str
    driver: str
    device: str | int | tuple[int, int]
    options: Mapping[str, Any] = field(default_factory=dict)  # the driver's own keys, as given

    @property
    def key(self) -> str:
        return f"readers[{self.index}]"


def _device(driver: str, value: Any, key: str) -> str | int | tuple[int, int]:
    if value is None:
        raise ConfigError(f"{key}.device: missing")
    if driver == "wiegand":
        ok = (isinstance(value, list) and len(value) == 2
              and all(isinstance(v, int) and not isinstance(v, bool) for v in value))
        if not ok:
            raise ConfigError(f"{key}.device: must be the two GPIO pins [D0, D1], not {value!r}")
        return (value[0], value[1])
    if driver == "camera" and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if not isinstance(value, str) or not value.strip():
        what = "a camera index (0, 1...), a device or a file" if driver == "camera" else "a non-empty string"
        raise ConfigError(f"{key}.device: must be {what}, not {value!r}")
    return value


def parse_readers(value: Any, errors: ConfigErrors | None = None) -> tuple[
        list[ReaderConfig], dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The entries, each reader's policy rule keys (for the policy tables) and its local-only
    policy keys; ConfigError naming ``readers[i].key`` (with ``errors``: each mistake
    recorded, and a reader with one left out)."""
    if value is None:
        return [], {}, {}
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        return collecting(errors, _fail("readers: must be an array of tables ([[readers]])"), ([], {}, {}))
    if len(value) > MAX_READERS:
        return collecting(errors, _fail(f"readers: at most {MAX_READERS} readers, not {len(value)}"), ([], {}, {}))
    readers: list[ReaderConfig] = []
    rules: dict[str, dict[str, Any]] = {}
    local: dict[str, dict[str, Any]] = {}
    for index, data in enumerate(value):
        reader = _reader(index, data, rules, errors)
        if reader is not None:
            readers.append(reader[0])
            rules[reader[0].name], local[reader[0].name] = reader[1], reader[2]
    return readers, rules, local


def _fail(message: str) -> Any:
    def fail() -> Any:
        raise ConfigError(message)
    return fail


def _reader(index: int, data: dict[str, Any], names: Mapping[str, Any], errors: ConfigErrors | None) -> tuple[
        ReaderConfig, dict[str, Any], dict[str, Any]] | None:
    """One ``[[readers]]`` entry; None when it has a mistake (recorded: only when collecting)."""
    key = f"readers[{index}]"
    table = Table(data, key, None, errors)  # type: ignore[arg-type]  # no paths among a reader's keys
    failed = False

    def fail(message: str) -> None:
        nonlocal failed
        failed = True
        table.fail(message)

    name = table.text("name", required=True)
    if name is not None:
        try:
            check_name(name, "a reader name")
        except ValueError as exc:
            fail(f"{key}.name: {exc}")
        if name in names:
            fail(f"{key}.name: {name!r} is already the name of another reader")
    driver = table.text("driver", required=True)
    if driver is not None and driver not in SOURCES:
        fail(f"{key}.driver: must be one of {', '.join(sorted(SOURCES))}, not {driver!r}")
    device = table.raw("device")
    if driver in SOURCES:
        device = collecting(errors, lambda: _device(driver, device, key), None)  # type: ignore[arg-type]
    direction = table.raw("direction")
    if direction not in (None, "in", "out"):
        fail(f'{key}.direction: must be "in" or "out", not {direction!r}')
    area = table.text("area")
    if area is not None:
        try:
            check_name(area, "an area")
        except ValueError as exc:
            fail(f"{key}.area: {exc}")
    mine = {"static_passes": table.raw("static_passes"), "legacy_cards": table.raw("legacy_cards"),
            "direction": direction, "area": area, "key": key}
    for flag in ("static_passes", "legacy_cards"):
        if not (mine[flag] is None or isinstance(mine[flag], bool)):  # 1 == True
            fail(f"{key}.{flag}: must be true or false, not {mine[flag]!r}")
    if failed or name is None or driver not in SOURCES or device is None:
        return None  # reached only when collecting: every mistake above is recorded
    rules = {k: data[k] for k in READER_RULE_KEYS if k in data}
    options = {k: v for k, v in data.items() if k not in GENERIC_KEYS}
    return ReaderConfig(index, name, driver, device, MappingProxyType(options)), rules, mine  # type: ignore[arg-type]


def site_policy(
    readers: list[ReaderConfig], rules: dict[str, dict[str, Any]], local: dict[str, dict[str, Any]],
    tables: dict[str, Any], *, static_default: bool, legacy_default: bool, passback: str, passback_reset_s: float,
    where: str,
) -> SitePolicy:
    """The gate's local policy: each reader's rules over the defaults (every kind its driver
    can present, any group, always), the gate's schedules, holidays, lockdown groups and
    time zone. ConfigError naming the key path of the first rule that does not hold."""
    data = {key: value for key, value in tables.items() if value is not None}
    data["readers"] = {name: rule for name, rule in rules.items()}
    try:
        parsed = parse_policy_tables(data, where=where)
    except ValueError as exc:
        raise ConfigError(_readers_path(str(exc), readers)) from None
    policies: dict[str, ReaderPolicy] = {}
    for reader in readers:
        mine = local[reader.name]
        given = {k: v for k, v in vars(parsed.readers.get(reader.name)).items() if v is not None} \
            if reader.name in parsed.readers else {}
        base = ReaderPolicy(
            kinds=DRIVER_KINDS[reader.driver],
            static_passes=static_default if mine["static_passes"] is None else mine["static_passes"],
            legacy_cards=legacy_default if mine["legacy_cards"] is None else mine["legacy_cards"],
            direction=mine["direction"], area=mine["area"],
        )
        kinds = given.get("kinds")
        if kinds is not None and not kinds <= DRIVER_KINDS[reader.driver]:
            extra = sorted(kinds - DRIVER_KINDS[reader.driver])
            raise ConfigError(f"{reader.key}.kinds: a {reader.driver} reader never presents {', '.join(extra)}")
        policies[reader.name] = replace(base, **given)
    try:
        return SitePolicy(
            readers=policies, schedules=parsed.schedules or {}, holidays=parsed.holidays or frozenset(),
            lockdown_groups=parsed.lockdown_groups or frozenset(), timezone=parsed.timezone,
            passback=passback, passback_reset_s=passback_reset_s, origin="local",  # type: ignore[arg-type]
        )
    except ValueError as exc:
        raise ConfigError(_readers_path(f"{where}: {exc}", readers)) from None


def _readers_path(message: str, readers: list[ReaderConfig]) -> str:
    """The policy parser names a reader ``readers.NAME``; the config file's key is
    ``readers[i]``."""
    for reader in readers:
        message = message.replace(f"readers.{reader.name}.", f"{reader.key}.").replace(
            f"readers.{reader.name}:", f"{reader.key}:")
    return message
