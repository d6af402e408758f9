"""A strict reader of the Prometheus text exposition format (0.0.4), for the metrics tests:
what node_exporter's textfile collector would refuse, this refuses too (a sample before its
TYPE, a family's samples split apart, a bad name or label, an unescaped quote, a value that
is not a number, a histogram whose buckets are not cumulative or lack +Inf, a duplicate
series). No dependency: prometheus-client's parser is more lenient than node_exporter."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


@dataclass
class ParsedFamily:
    name: str
    kind: str
    help: str
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)


def _labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    position = 0
    while position < len(text):
        match = _LABEL.match(text, position)
        assert match is not None, f"bad label set at {text[position:]!r}"
        name, value = match.group(1), match.group(2)
        assert name not in labels, f"label {name} twice"
        labels[name] = value.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
        position = match.end()
        if position < len(text):
            assert text[position] == ",", f"labels not separated by commas: {text!r}"
            position += 1
    return labels


def _value(text: str) -> float:
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    assert re.fullmatch(r"[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?", text), f"not a number: {text!r}"
    return float(text)


def parse(text: str) -> dict[str, ParsedFamily]:
    assert text.endswith("\n"), "the file must end with a newline"
    families: dict[str, ParsedFamily] = {}
    current: ParsedFamily | None = None
    helps: dict[str, str] = {}
    series: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for line in text[:-1].split("\n"):
        assert line, "no empty lines"
        if line.startswith("# HELP "):
            name, _, doc = line[7:].partition(" ")
            assert _NAME.fullmatch(name) and name not in helps, line
            helps[name] = doc
            continue
        if line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert _NAME.fullmatch(name) and kind in _TYPES and name not in families, line
            current = families[name] = ParsedFamily(name, kind, helps.get(name, ""))
            continue
        assert not line.startswith("#"), f"stray comment {line!r}"
        match = _SAMPLE.match(line)
        assert match is not None, f"not a sample line: {line!r}"
        name, labels = match.group(1), _labels(match.group(3) or "")
        assert current is not None, f"sample before any TYPE: {line!r}"
        suffixes = ("_bucket", "_sum", "_count") if current.kind == "histogram" else ("",)
        suffix = next((s for s in suffixes if name == current.name + s), None)
        assert suffix is not None, f"{name} is not part of the family {current.name} it follows"
        key = (name, tuple(sorted(labels.items())))
        assert key not in series, f"duplicate series {key}"
        series.add(key)
        value = _value(match.group(4))
        if current.kind == "counter":
            assert value >= 0 and current.name.endswith("_total"), line
        current.samples.append((suffix, labels, value))
    for family in families.values():
        if family.kind == "histogram":
            _check_histogram(family)
    return families


def _check_histogram(family: ParsedFamily) -> None:
    by_series: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    counts: dict[tuple[tuple[str, str], ...], float] = {}
    for suffix, labels, value in family.samples:
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        if suffix == "_bucket":
            by_series.setdefault(rest, []).append((_value(labels["le"]), value))
        elif suffix == "_count":
            counts[rest] = value
    for rest, buckets in by_series.items():
        bounds = [b for b, _v in buckets]
        assert bounds == sorted(bounds) and math.isinf(bounds[-1]), f"{family.name}{rest}: buckets {bounds}"
        values = [v for _b, v in buckets]
        assert values == sorted(values), f"{family.name}{rest}: buckets not cumulative"
        assert counts[rest] == values[-1], f"{family.name}{rest}: _count is not the +Inf bucket"


def value(families: dict[str, ParsedFamily], name: str, suffix: str = "", **labels: str) -> float:
    """The one sample of ``name`` whose labels include ``labels``."""
    found = [v for s, lab, v in families[name].samples if s == suffix and labels.items() <= lab.items()]
    assert len(found) == 1, f"{name}{suffix}{labels}: {len(found)} samples"
    return found[0]
