"""API keys: salted hashes only, verification, revocation, rotation, expiry, model allow-lists, usage, CLI."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from llmship.errors import AuthenticationError, KeyRequestError, PermissionDenied
from llmship.gateway import keys as keys_module
from llmship.gateway.keys import KeyStore, parse_duration
from tests.unit.test_cli import assert_one_error_line, run_cli


@pytest.fixture()
def store(tmp_path):
    s = KeyStore(tmp_path / "keys.db")
    yield s
    s.close()


def test_a_key_verifies_and_only_its_salted_hash_is_stored(store, tmp_path):
    record, key = store.create("team-a", rpm=60, tpm=10_000, models=["rag", "gemma3-270m"])
    assert key.startswith("sk-llmship-") and record.models == ["gemma3-270m", "rag"]
    assert store.verify(key, model="rag").name == "team-a"
    raw = (tmp_path / "keys.db").read_bytes()
    secret = key.split("-", 3)[3]  # sk-llmship-<id>-<secret>; the secret itself may hold "-"
    assert secret.encode() not in raw and key.encode() not in raw
    assert (tmp_path / "keys.db").stat().st_mode & 0o777 == 0o600
    store.create("team-b")
    rows = sqlite3.connect(tmp_path / "keys.db").execute("SELECT salt, hash FROM keys").fetchall()
    assert len({r[0] for r in rows}) == 2 and len({r[1] for r in rows}) == 2  # per-key salts


@pytest.mark.parametrize("bad", [None, "", "sk-nope", "sk-llmship-00000000-" + "x" * 43])
def test_missing_or_unknown_keys_are_401(store, bad):
    store.create("a")
    with pytest.raises(AuthenticationError) as err:
        store.verify(bad)
    assert err.value.status == 401 and err.value.code == "invalid_api_key"
    if bad:
        assert bad not in str(err.value)  # a message never echoes the key


def test_a_tampered_secret_is_401(store):
    _, key = store.create("a")
    with pytest.raises(AuthenticationError):
        store.verify(key[:-1] + ("A" if key[-1] != "A" else "B"))


def test_revoke_rotate_and_expiry(store, monkeypatch):
    _, key = store.create("a", rpm=5)
    _, new = store.rotate("a")
    with pytest.raises(AuthenticationError):
        store.verify(key)
    assert store.verify(new).rpm == 5  # same limits
    store.revoke("a")
    with pytest.raises(AuthenticationError, match="revoked"):
        store.verify(new)
    with pytest.raises(KeyRequestError):
        store.rotate("a")
    _, short = store.create("short", expires_in_s=60)
    assert store.verify(short)
    later = time.time() + 61  # the store's clock moved past the expiry (no sleeping on a busy machine)
    monkeypatch.setattr(keys_module, "time", SimpleNamespace(time=lambda: later))
    with pytest.raises(AuthenticationError, match="expired"):
        store.verify(short)


def test_a_revoked_keys_name_can_be_used_again(store):
    old_record, old = store.create("team", rpm=5)
    with pytest.raises(KeyRequestError, match="exists; revoke or rotate it"):
        store.create("team")  # while the key can still work, its name is taken
    store.revoke("team")
    record, new = store.create("team", rpm=7)
    assert store.verify(new).rpm == 7 and store.get("team").id == record.id != old_record.id
    with pytest.raises(AuthenticationError, match="revoked"):
        store.verify(old)  # the old key stays revoked, kept under a new name for the audit trail
    names = {k.name: k for k in store.list()}
    assert names[f"team~revoked-{old_record.id}"].revoked_at is not None and names["team"].revoked_at is None


def test_model_allow_list_is_403(store):
    _, key = store.create("a", models=["rag"])
    with pytest.raises(PermissionDenied) as err:
        store.verify(key, model="gemma3-270m")
    assert err.value.status == 403 and err.value.param == "model"


def test_names_are_unique_and_usage_is_counted(store):
    record, _ = store.create("a")
    with pytest.raises(KeyRequestError, match="exists"):
        store.create("a")
    store.record_usage(record.id, tokens=120)
    store.record_usage(record.id, tokens=30)
    got = store.get("a")
    assert (got.requests, got.tokens) == (2, 150) and got.last_used_at


def test_durations():
    assert parse_duration("30d") == 30 * 86400 and parse_duration("12h") == 43200
    for bad in ("0d", "3y", "soon", ""):
        with pytest.raises(KeyRequestError):
            parse_duration(bad)


def test_cli_prints_the_key_once_and_manages_it(home):
    created = run_cli(home, "keys", "create", "--name", "ci", "--rpm", "10", "--models", "rag", "--expires", "1d")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("sk-llmship-") and "only time" in created.stderr
    listed = run_cli(home, "keys", "list")
    assert "ci" in listed.stdout and key not in listed.stdout and "active" in listed.stdout
    assert run_cli(home, "keys", "revoke", "ci").returncode == 0
    assert "revoked" in run_cli(home, "keys", "list").stdout
    again = run_cli(home, "keys", "create", "--name", "ci")  # a revoked key's name is free again
    assert again.returncode == 0 and again.stdout.strip().startswith("sk-llmship-"), again.stderr
    assert_one_error_line(run_cli(home, "keys", "create", "--name", "ci"), "exists; revoke or rotate it")
    assert_one_error_line(run_cli(home, "keys", "revoke", "nope"), "no key named 'nope'")
    assert_one_error_line(run_cli(home, "keys", "create", "--name", "x", "--expires", "soon"), "bad duration")
    assert "requests" in run_cli(home, "keys", "usage").stdout


# ---- a key store mounted read-only (a Kubernetes Secret volume) ----------------------------------------------------


def secret_volume(tmp_path, db: Path, version: str) -> Path:
    """Lay ``db`` out as the kubelet lays out a Secret volume: ``keys.db -> ..data/keys.db``, ``..data -> ..<ts>``;
    an update writes a new ``..<ts>`` folder and swaps the ``..data`` link atomically."""
    mount = tmp_path / "mount"
    mount.mkdir(exist_ok=True)
    (mount / f"..{version}").mkdir()
    shutil.copyfile(db, mount / f"..{version}" / "keys.db")
    (mount / "..data_tmp").symlink_to(f"..{version}")
    os.replace(mount / "..data_tmp", mount / "..data")
    if not (mount / "keys.db").is_symlink():
        (mount / "keys.db").symlink_to("..data/keys.db")
    return mount / "keys.db"


@pytest.fixture()
def read_only(monkeypatch, tmp_path):
    """The mount reads as unwritable (the tests may run as root, whom file modes do not stop)."""
    real = os.access
    mount = tmp_path / "mount"

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and (Path(path) == mount or mount in Path(path).parents):
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(keys_module.os, "access", access)
    return mount


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_read_only_store_verifies_without_writing_and_refuses_changes(tmp_path, read_only):
    source = KeyStore(tmp_path / "local" / "keys.db")  # WAL mode, like every store the CLI writes
    record, key = source.create("team-a", models=["gemma3-270m"])
    source.close()
    path = secret_volume(tmp_path, tmp_path / "local" / "keys.db", "2026_01_01")
    before = snapshot(read_only)

    store = KeyStore(path)
    assert store.read_only
    assert store.verify(key, model="gemma3-270m").name == "team-a"
    store.record_usage(record.id, tokens=100)  # skipped: usage is in the audit log and the gateway's counter
    assert store.get("team-a").requests == 0 and [k.name for k in store.list()] == ["team-a"]
    for change in (lambda: store.create("b"), lambda: store.revoke("team-a"), lambda: store.rotate("team-a")):
        with pytest.raises(KeyRequestError, match="read-only"):
            change()
    store.close()
    assert snapshot(read_only) == before  # no -wal/-shm file, not a byte changed


def test_a_read_only_store_follows_the_secret_when_it_is_updated(tmp_path, read_only):
    source = KeyStore(tmp_path / "local" / "keys.db")
    _, old = source.create("old")
    _, kept = source.create("kept")
    source.close()  # the last close checkpoints the WAL into keys.db, as `llmship keys ...` does on exit
    path = secret_volume(tmp_path, tmp_path / "local" / "keys.db", "v1")
    store = KeyStore(path)
    assert store.verify(old).name == "old" and store.verify(kept).name == "kept"

    source = KeyStore(tmp_path / "local" / "keys.db")
    source.revoke("old")
    _, new = source.create("new")
    source.close()
    secret_volume(tmp_path, tmp_path / "local" / "keys.db", "v2")  # `kubectl apply` of the Secret, then the kubelet

    assert store.verify(new).name == "new" and store.verify(kept).name == "kept"
    with pytest.raises(AuthenticationError, match="revoked"):
        store.verify(old)
    store.close()


def test_a_writable_store_stays_read_write(store):
    assert not store.read_only
    record, key = store.create("a")
    store.record_usage(record.id, tokens=5)
    assert store.verify(key).requests == 1
