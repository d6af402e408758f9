"""What the installer builds a gate's environment from: the tag that names it, and, for an
offline install, the check that the wheel directory holds everything the extras need before
anything changes. Standard library only; scripts/install_site.py runs it."""

from __future__ import annotations

import hashlib
import re
import tomllib
import zipfile
from pathlib import Path

from install_bootfiles import SiteError

_MAX_METADATA_BYTES = 1 << 20  # a wheel's METADATA: the README and the requirements, well under this


def _normal(name: str) -> str:
    """A distribution name as wheel file names spell it (PEP 503 normalised, ``_`` for runs of
    ``-_.``): prometheus-client, Prometheus_Client and prometheus.client are one."""
    return re.sub(r"[-_.]+", "_", name).lower()


def extra_requirements(wheel: Path, extras: tuple[str, ...]) -> dict[str, str]:
    """The distributions the wheel's ``extras`` add (name -> the extra that needs it), from its
    METADATA's ``Requires-Dist: NAME...; extra == "X"`` lines."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = [n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
            if len(names) != 1:
                raise SiteError(f"{wheel.name}: not a wheel ({len(names)} METADATA files)")
            info = archive.getinfo(names[0])
            if info.file_size > _MAX_METADATA_BYTES:
                raise SiteError(f"{wheel.name}: METADATA larger than {_MAX_METADATA_BYTES} bytes")
            text = archive.read(info).decode("utf-8")
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise SiteError(f"{wheel.name}: cannot be read as a wheel ({exc})") from None
    needed: dict[str, str] = {}
    for line in text.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        requirement, _, marker = line.removeprefix("Requires-Dist:").partition(";")
        name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
        if name and extra and extra.group(1) in extras:
            needed[name.group(1)] = extra.group(1)
    missing = set(extras) - set(needed.values())
    if missing:
        raise SiteError(f"{wheel.name}: has no extra {', '.join(sorted(missing))} (an older release?)")
    return needed


def check_wheels(wheels: Path, ours: Path, extras: tuple[str, ...]) -> None:
    """Every distribution the extras need has a wheel in ``wheels``; SiteError naming the first
    missing one and how to make the directory whole."""
    present = {_normal(f.name.split("-")[0]) for f in wheels.glob("*.whl")}
    for name, extra in sorted(extra_requirements(ours, extras).items()):
        if _normal(name) not in present:
            raise SiteError(f"--wheels {wheels}: no wheel for {name}, which gate-reader[{extra}] needs; make the "
                            f"directory with `pip wheel '.[{','.join(extras)}]' -w DIR` (section 5 of the guide)")


def source_tag(src: Path, wheels: Path | None, extras: tuple[str, ...] = ()) -> str:
    """``VERSION-HASH``: the hash covers what the environment is built from (the wheels, or the
    project's sources, and the extras installed), so an unchanged source is never rebuilt and a
    changed one always is. From a wheel directory the version is that of its one gate_reader
    wheel, and the extras' wheels must be there."""
    digest = hashlib.sha256()
    if wheels is not None:
        files = sorted(wheels.glob("*.whl"))
        ours = [f for f in files if f.name.startswith("gate_reader-")]
        if len(ours) != 1:
            raise SiteError(f"--wheels {wheels}: {len(ours)} gate_reader-*.whl files there, not one "
                            f"(make the directory with `pip wheel '.[{','.join(extras)}]' -w DIR` from one release)")
        if extras:
            check_wheels(wheels, ours[0], extras)
        version = ours[0].name.split("-")[1]
        base = wheels
    else:
        files = [src / "pyproject.toml", src / "README.md"]
        for package in ("reader", "drivers", "offline_cache"):
            files += sorted(p for p in (src / package).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        version = tomllib.loads((src / "pyproject.toml").read_text("utf-8"))["project"]["version"]
        base = src
    if extras:  # an environment with other extras is another environment
        digest.update(b"extras\0" + ",".join(sorted(extras)).encode() + b"\0")
    for path in files:
        digest.update(str(path.relative_to(base)).encode() + b"\0" + path.read_bytes() + b"\0")
    if not re.fullmatch(r"[\w.+!]+", version):
        raise SiteError(f"version {version!r} is not a version")
    return f"{version}-{digest.hexdigest()[:12]}"
