"""Config paths that are not what they should be (issue 8, item 10), and a command checking
only the files it uses, so the example configuration runs as shipped (item 13).

Each path key that is wrong in its way (a directory where a file belongs, a directory that
cannot be made or written, a file that is missing) is a configuration error naming the
key, exit 2, never a traceback, and only for a command that uses it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from offline_cache.store import Store
from tests.support import EXAMPLE_CONFIG as EXAMPLE
from tests.support.centre import run
from tests.support.unprivileged import gate_reader, scratch


def _config(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "gate.toml"
    config.write_text(f'[gate]\nid = "g"\n{text}')
    return config


def _with_cache(tmp_path: Path) -> None:
    Store.open(tmp_path / "cache.db", create=True).close()


CASES = {
    # key: (config text after [gate] id, the command that uses it, what else the error says)
    "gate.trust": ('trust = "."\n[cache]\npath = "cache.db"\n', ["status"], "Is a directory"),
    "gate.trust for verify": ('trust = "."\n[cache]\npath = "cache.db"\n', ["verify", "GP1:x"], "Is a directory"),
    "gate.key": ('key = "gate.toml/gate.key"\n[cache]\npath = "cache.db"\n', ["gate-key"], "Not a directory"),
    "cache.path": ('[cache]\npath = "gate.toml/db/cache.db"\n[sync]\nmetadata_url = "http://127.0.0.1:9/m/"\n'
                   'targets_url = "http://127.0.0.1:9/t/"\nroot = "gate.toml"\n', ["sync"], "cannot create"),
    "cache.path is a directory": ('[cache]\npath = "."\n', ["status"], "is a directory"),
    "sync.root": ('[cache]\npath = "cache.db"\n[sync]\nmetadata_url = "http://127.0.0.1:9/m/"\n'
                  'targets_url = "http://127.0.0.1:9/t/"\nroot = "."\n', ["sync"], "Is a directory"),
    "upload.ca": ('[cache]\npath = "cache.db"\n[upload]\nurl = "https://127.0.0.1:9/e"\nca = "."\n', ["upload"],
                  "Is a directory"),
    "upload.token_file": ('[cache]\npath = "cache.db"\n[upload]\nurl = "http://127.0.0.1:9/e"\n'
                          'token_file = "nope.token"\n', ["upload"], "No such file"),
    "upload.client_cert": ('[cache]\npath = "cache.db"\n[upload]\nurl = "http://127.0.0.1:9/e"\n'
                           'client_cert = "."\nclient_key = "."\n', ["upload"], "Is a directory"),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_config_paths_that_are_not_what_they_should_be_name_their_key(tmp_path: Path, case: str) -> None:
    text, argv, detail = CASES[case]
    config = _config(tmp_path, text)
    _with_cache(tmp_path)
    command, *rest = argv
    code, _out, err = run(command, "--config", str(config), *rest)
    key = case.split(" ")[0]
    assert code == 2, err
    assert err.startswith(f"gate-reader {command}: error: {key}: ") and detail in err, err
    assert len(err.strip().splitlines()) == 1


def test_a_key_directory_that_cannot_be_written_is_a_configuration_error() -> None:
    with scratch() as tmp:
        (tmp / "keys").mkdir()
        (tmp / "keys").chmod(0o555)
        config = _config(tmp, 'key = "keys/gate.key"\n[cache]\npath = "cache.db"\n')
        result = gate_reader("gate-key", "--config", str(config))
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("gate-reader gate-key: error: gate.key: ")
        assert "Permission denied" in result.stderr
        assert "Traceback" not in result.stderr and not (tmp / "keys" / "gate.key").exists()


def test_a_cache_directory_that_cannot_be_created_is_a_configuration_error() -> None:
    with scratch() as tmp:
        (tmp / "var").mkdir()
        (tmp / "var").chmod(0o555)
        (tmp / "root.json").write_text("{}")
        config = _config(tmp, '[cache]\npath = "var/gate/cache.db"\n[sync]\nmetadata_url = "http://127.0.0.1:9/m/"\n'
                              'targets_url = "http://127.0.0.1:9/t/"\nroot = "root.json"\n')  # fmt: skip
        result = gate_reader("sync", "--config", str(config))
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("gate-reader sync: error: cache.path: cannot create the directory")
        assert "Permission denied" in result.stderr and "Traceback" not in result.stderr


def test_the_example_config_runs_sync_once_its_urls_and_root_are_filled_in(centre, tmp_path: Path) -> None:
    gate = centre.config.read_text()
    urls = {line.split(" = ")[0]: line.split(" = ")[1] for line in gate.splitlines() if "_url = " in line}
    root = next(line.split(" = ")[1] for line in gate.splitlines() if line.startswith("root = "))
    text = EXAMPLE.read_text()
    text = text.replace('"https://pki.example.gov/gatepass/metadata/"', urls["metadata_url"])
    text = text.replace('"https://pki.example.gov/gatepass/targets/"', urls["targets_url"])
    text = text.replace('"/etc/gate-reader/root.json"', root)
    # The one change a test must make beyond that: the gate's state goes to a scratch
    # directory instead of /var/lib/gate-reader.
    text = text.replace("/var/lib/gate-reader/", f"{tmp_path}/var/")
    assert "/etc/gate-reader/collector-ca.pem" in text  # still as shipped: not installed here
    config = tmp_path / "example.toml"
    config.write_text(text)
    code, out, err = run("sync", "--config", str(config), "--no-upload")
    assert code == 0 and "sync ok" in out and err == "", err
    code, out, err = run("sync", "--config", str(config))
    assert code == 0 and "sync ok" in out, err
    # The upload's failure is the upload's: a warning, once, and a problem in status.
    assert err == ("gate-reader sync: warning: upload failed: upload.token_file: /etc/gate-reader/upload.token: "
                   "No such file or directory\n")
    code, out, _ = run("status", "--config", str(config))
    assert code == 1 and "problem: upload failing" in out
    assert os.path.exists(tmp_path / "var" / "cache.db")
