"""The gate key: made once with mode 0600, the same key on every later start, and a key
file others could read is refused rather than used."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from offline_cache.errors import CacheError
from offline_cache.gatekey import load_or_create_gate_key, public_key_pem, public_key_raw


def _raw(key: Ed25519PrivateKey) -> bytes:
    return public_key_raw(key)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_created_0600_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "keys" / "gate.key"  # the directory is made too
    old = os.umask(umask)
    try:
        key = load_or_create_gate_key(path)
    finally:
        os.umask(old)
    assert isinstance(key, Ed25519PrivateKey)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    assert [p.name for p in path.parent.iterdir()] == ["gate.key"]  # no temporary left behind


def test_reloaded_the_same(tmp_path: Path) -> None:
    path = tmp_path / "gate.key"
    first = load_or_create_gate_key(path)
    before = path.read_bytes()
    again = load_or_create_gate_key(str(path))
    assert _raw(again) == _raw(first)
    assert path.read_bytes() == before  # loading never rewrites the file


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606, 0o620])
def test_group_or_world_access_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "gate.key"
    load_or_create_gate_key(path)
    path.chmod(mode)
    with pytest.raises(CacheError) as info:
        load_or_create_gate_key(path)
    message = str(info.value)
    assert str(path) in message
    assert f"{mode:04o}" in message
    assert "chmod 600" in message


def test_owner_only_read_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "gate.key"
    key = load_or_create_gate_key(path)
    path.chmod(0o400)
    assert _raw(load_or_create_gate_key(path)) == _raw(key)


def test_not_an_ed25519_key_refused(tmp_path: Path) -> None:
    path = tmp_path / "gate.key"
    other = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)
    with pytest.raises(CacheError, match=r"gate\.key: holds a .*not an Ed25519 key"):
        load_or_create_gate_key(path)


def test_garbage_refused_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "gate.key"
    path.write_bytes(b"not a key\n")
    path.chmod(0o600)
    with pytest.raises(CacheError, match="not an unencrypted PEM private key"):
        load_or_create_gate_key(path)
    assert path.read_bytes() == b"not a key\n"  # a broken key is an installer's problem, never overwritten


def test_directory_in_the_way_refused(tmp_path: Path) -> None:
    path = tmp_path / "gate.key"
    path.mkdir(mode=0o700)
    with pytest.raises(CacheError, match=str(path)):
        load_or_create_gate_key(path)


def test_public_key_pem(tmp_path: Path) -> None:
    key = load_or_create_gate_key(tmp_path / "gate.key")
    pem = public_key_pem(key)
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    public = serialization.load_pem_public_key(pem)
    assert isinstance(public, Ed25519PublicKey)
    assert public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == _raw(key)
    assert b"PRIVATE" not in pem
