"""What the installer's tests share. They run the real ``scripts/install.sh --root TREE``: a real virtual
environment built by pip, the user made by systemd-sysusers in the tree, enable links written
by ``systemctl --root``. Building the environment takes ~15 s, so it is done once per session
(``installed``); a test that changes a tree works on a copy of it (``clone``), in which the
environment is hard-linked, not copied (the installer never writes inside an environment, it
only builds a new one or removes an old one).

The site config of the session's gate is chosen to be unlike the defaults: a maglock
(fail_safe) on an active-high board, so the relay's boot level is ``dh``; a sync period of
60 s; the door on lgpio where this machine has it (PIN_FACTORY); one reader of each kind, one
of them on the header UART. It is a config the gate would start with (`gate-reader
check-config` finds no error): the installer checks that first.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "scripts" / "install.sh"

SITE_CONFIG = """\
[gate]
id = "test-gate-1"

[cache]
path = "/var/lib/gate-reader/cache.db"

[sync]
metadata_url = "https://pki.example.gov/gatepass/metadata/"
targets_url = "https://pki.example.gov/gatepass/targets/"
root = "/etc/gate-reader/root.json"
interval_s = 60

[door]
pin_factory = "lgpio"
lock_type = "fail_safe"
relay = { pin = 17, active_high = true }

[[readers]]
name = "usb-nfc"
driver = "nfc"
device = "usb:072f:2200"

[[readers]]
name = "uart-nfc"
driver = "nfc"
device = "tty:serial0:pn532"

[[readers]]
name = "scanner"
driver = "scanner"
device = "/dev/gate/scanner-0c2e-0b61"

[[readers]]
name = "camera"
driver = "camera"
device = "/dev/video0"
"""

# The pin factory the gate's environment can load on this machine: lgpio where its wheel exists
# (64-bit Linux ARM, Python 3.11/3.12: pyproject's marker, the same for this test environment
# and the one the installer builds), mock elsewhere. The installer refuses a config whose daemon
# could not start (check-config), so a test machine without lgpio installs a mock door.
PIN_FACTORY = "lgpio" if importlib.util.find_spec("lgpio") is not None else "mock"
SITE_CONFIG = SITE_CONFIG.replace('pin_factory = "lgpio"', f'pin_factory = "{PIN_FACTORY}"')

# TUF root metadata as python-tuf writes it (the installer checks its shape, not its keys).
ROOT_JSON = '{"signatures": [{"keyid": "ab", "sig": "cd"}], "signed": {"_type": "root", "version": 1}}\n'

CONFIG_TXT = "# the Pi's own settings\ndtparam=audio=on\n\n[cm4]\notg_mode=1\n\n[all]\narm_64bit=1\n"
CMDLINE_TXT = "console=serial0,115200 console=tty1 root=PARTUUID=4e5f-02 rootfstype=ext4 fsck.repair=yes rootwait\n"


def tools_missing() -> str | None:
    for tool in ("systemd-sysusers", "systemctl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed: the installer makes the user and enable links with it"
    return None


@dataclass(frozen=True)
class Tree:
    """An installed gate under ``root``; ``path("/etc/...")`` is that path in the tree."""

    root: Path
    inputs: Path  # the site config and root.json given to the installer

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def ids(self, name: str) -> int:
        """The uid of user ``name`` (or gid of group ``name``) in the tree's own database."""
        for db in ("passwd", "group"):
            for line in self.path(f"/etc/{db}").read_text().splitlines():
                fields = line.split(":")
                if fields[0] == name:
                    return int(fields[2])
        raise KeyError(name)


def run_install(root: Path, *args: str | Path, src: Path = REPO,
                check: bool = True) -> subprocess.CompletedProcess[str]:
    """``install.sh --root ROOT ARGS`` from the source tree ``src``."""
    result = subprocess.run(["bash", str(src / "scripts" / "install.sh"), "--root", str(root), *map(str, args)],
                            capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"install.sh failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def make_boot(root: Path) -> None:
    """A Pi's boot partition as Bookworm lays it out."""
    boot = root / "boot" / "firmware"
    boot.mkdir(parents=True)
    (boot / "config.txt").write_text(CONFIG_TXT)
    (boot / "cmdline.txt").write_text(CMDLINE_TXT)


def tree_sum(root: Path) -> dict[str, str]:
    """Every path in the tree with its type, mode, owner, mtime and content hash (or link
    target): equal sums mean no file was written, chmod'ed, chown'ed, added or removed."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in [*dirnames, *filenames]:
            path = Path(dirpath, name)
            st = path.lstat()
            record = f"{st.st_mode:o} {st.st_uid}:{st.st_gid} {st.st_mtime_ns}"
            if stat.S_ISLNK(st.st_mode):
                record += " -> " + os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                record += " " + hashlib.sha256(path.read_bytes()).hexdigest()
            out[str(path.relative_to(root))] = record
    return out


def clone(tree: Tree, dest: Path) -> Tree:
    """A copy of an installed tree; its environments are hard links to the original's."""
    venvs = tree.path("/opt/gate-reader/venvs")
    shutil.copytree(tree.root, dest, symlinks=True,
                    ignore=lambda d, names: ["venvs"] if Path(d) == venvs.parent else [])
    subprocess.run(["cp", "-al", str(venvs), str(dest / "opt/gate-reader/venvs")], check=True)
    return Tree(dest, tree.inputs)


def replace_text(path: Path, text: str) -> None:
    """Write ``text`` as a new file (never through a hard link into another tree)."""
    path.unlink(missing_ok=True)
    path.write_text(text)



# scripts/install_site.py, the installer's helper, as a module (scripts/ is not a package), with
# scripts/install_bootfiles.py, which it imports by name as it does when run from scripts/
def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


_load("install_bootfiles")
_load("install_wheels")
site = _load("install_site")
