"""Client-side encryption, integrity and secrecy, on every backend."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from typing import Any

import pytest

from cairnflow.core import codec, keys
from cairnflow.core.errors import CairnflowError, CorruptCheckpointError, DecryptionError
from cairnflow.core.executor import interrupt, task, workflow
from cairnflow.core.log import CheckpointLog
from cairnflow.core.store import OVERWRITE, ObjectStore
from cairnflow.encryption import AesGcmCipher, generate_key

SECRET = "4111-1111-1111-1111 card of Ada Lovelace"
K1 = os.urandom(32)
K2 = os.urandom(32)
PREFIX = "tenant-a/"


def cipher(*ring: tuple[str, bytes]) -> AesGcmCipher:
    return AesGcmCipher(dict(ring), ring[0][0])


def rec(value: Any) -> dict[str, Any]:
    return {"op": "task", "pos": 0, "name": "t", "args": "x", "value": value}


def all_bytes(store: ObjectStore) -> bytes:
    return b"".join(store.get(o.key).data for o in store.list(""))


def reseal(data: bytes, mutate_header: Any = None, mutate_body: Any = None) -> bytes:
    """Rewrite an object with a valid checksum: what an attacker with bucket write access can do."""
    env = codec.decode(data)
    head = env.header_bytes
    if mutate_header is not None:
        header = dict(env.header)
        mutate_header(header)
        head = codec.encode_header(header)
    body = mutate_body(env.body) if mutate_body is not None else env.body
    return codec.encode(head, body, env.flags)


def test_encrypted_round_trip_and_no_plaintext_in_the_bucket(store: ObjectStore) -> None:
    saver = CheckpointLog(store, prefix=PREFIX, cipher=cipher(("k1", K1)))
    head = saver.append("t", None, [rec(SECRET)], status="running")
    saver.append("t", head, [rec({"card": SECRET})], status="running")
    latest = saver.latest("t")
    assert latest is not None
    assert [r["value"] for r in latest.records] == [SECRET, {"card": SECRET}]
    raw = all_bytes(store)
    assert SECRET.encode() not in raw
    assert b"Lovelace" not in raw
    assert codec.decode(store.get(keys.checkpoint_key(PREFIX, "t", 0)).data).header["key"] == "k1"


def test_key_rotation_keeps_old_objects_readable(store: ObjectStore) -> None:
    old = CheckpointLog(store, prefix=PREFIX, cipher=cipher(("k1", K1)))
    head = old.append("t", None, [rec("written under k1")], status="running")
    rotated = CheckpointLog(store, prefix=PREFIX, cipher=cipher(("k2", K2), ("k1", K1)))
    head = rotated.append("t", head, [rec("written under k2")], status="running")
    assert [r["value"] for r in rotated.get("t", 0).records] == ["written under k1"]
    latest = rotated.latest("t")
    assert latest is not None and [r["value"] for r in latest.records] == [
        "written under k1",
        "written under k2",
    ]
    assert codec.decode(store.get(keys.checkpoint_key(PREFIX, "t", 1)).data).header["key"] == "k2"
    # Without k1 in the ring the old object is refused, clearly.
    with pytest.raises(DecryptionError, match="no key with id 'k1'"):
        CheckpointLog(store, prefix=PREFIX, cipher=cipher(("k2", K2))).get("t", 0)


def test_wrong_key_is_rejected(store: ObjectStore) -> None:
    CheckpointLog(store, prefix=PREFIX, cipher=cipher(("k1", K1))).append(
        "t", None, [rec(1)], status="running"
    )
    impostor = CheckpointLog(store, prefix=PREFIX, cipher=cipher(("k1", K2)))
    with pytest.raises(DecryptionError, match="authentication failed"):
        impostor.latest("t")


def test_object_moved_to_another_thread_or_position_is_rejected(store: ObjectStore) -> None:
    saver = CheckpointLog(store, prefix=PREFIX, cipher=cipher(("k1", K1)))
    saver.append("victim", None, [rec("mine")], status="running")
    stolen = store.get(keys.checkpoint_key(PREFIX, "victim", 0)).data
    # The attacker rewrites the clear header so that it matches its new key, and reseals the checksum.
    moved = reseal(stolen, mutate_header=lambda h: h.update(thread="attacker"))
    store.put(keys.checkpoint_key(PREFIX, "attacker", 0), moved, OVERWRITE)
    with pytest.raises(DecryptionError):
        saver.latest("attacker")
    # Same object replayed at a later position of the same thread.
    saver.append("victim", saver.latest("victim"), [rec("second")], status="running")
    replayed = reseal(stolen, mutate_header=lambda h: h.update(seq=2, base=2))
    store.put(keys.checkpoint_key(PREFIX, "victim", 2), replayed, OVERWRITE)
    with pytest.raises(DecryptionError):
        saver.latest("victim")


def test_tampering_is_detected_with_and_without_a_resealed_checksum(store: ObjectStore) -> None:
    saver = CheckpointLog(store, prefix=PREFIX, cipher=cipher(("k1", K1)))
    saver.append("t", None, [rec("amount: 10")], status="running")
    key = keys.checkpoint_key(PREFIX, "t", 0)
    original = store.get(key).data
    flipped = original[:-40] + bytes([original[-40] ^ 1]) + original[-39:]
    store.put(key, flipped, OVERWRITE)
    with pytest.raises(CorruptCheckpointError, match="checksum"):
        saver.latest("t")
    resealed = reseal(original, mutate_body=lambda b: b[:-1] + bytes([b[-1] ^ 1]))
    store.put(key, resealed, OVERWRITE)
    with pytest.raises(DecryptionError):
        saver.latest("t")
    status_edit = reseal(original, mutate_header=lambda h: h.update(status="completed"))
    store.put(key, status_edit, OVERWRITE)
    with pytest.raises(DecryptionError):
        saver.latest("t")


def test_planted_plaintext_object_is_refused_by_an_encrypting_saver(store: ObjectStore) -> None:
    CheckpointLog(store, prefix=PREFIX).append("t", None, [rec("planted")], status="running")
    encrypting = CheckpointLog(store, prefix=PREFIX, cipher=cipher(("k1", K1)))
    with pytest.raises(DecryptionError, match="not encrypted"):
        encrypting.latest("t")
    migrating = CheckpointLog(store, prefix=PREFIX, cipher=cipher(("k1", K1)), require_encryption=False)
    latest = migrating.latest("t")
    assert latest is not None and latest.records[0]["value"] == "planted"
    # The other way round: a saver with no cipher meets an encrypted object.
    CheckpointLog(store, prefix=PREFIX, cipher=cipher(("k1", K1))).append(
        "u", None, [rec(1)], status="running"
    )
    with pytest.raises(DecryptionError, match="no cipher"):
        CheckpointLog(store, prefix=PREFIX).latest("u")


def test_keys_from_environment_and_callable() -> None:
    env = {"CAIRNFLOW_ENCRYPTION_KEYS": f"new:{generate_key()}, old:{base64.b64encode(K1).decode()}"}
    ring = AesGcmCipher.from_env(environ=env)
    assert ring.key_id == "new"
    sealed = ring.encrypt(b"x", b"ad")
    assert ring.decrypt(sealed, b"ad", "new") == b"x"
    asked: list[str] = []

    def kms(key_id: str) -> bytes:
        asked.append(key_id)
        return K2

    via_kms = AesGcmCipher(kms, "kms-1")
    assert via_kms.decrypt(via_kms.encrypt(b"y", b""), b"", "kms-1") == b"y"
    assert asked == ["kms-1"]  # the data key is fetched once and cached
    for bad in ({}, {"CAIRNFLOW_ENCRYPTION_KEYS": "nocolon"}, {"CAIRNFLOW_ENCRYPTION_KEYS": "k:!!notbase64"}):
        with pytest.raises(ValueError):
            AesGcmCipher.from_env(environ=bad)
    with pytest.raises(ValueError, match="32 bytes"):
        AesGcmCipher({"short": b"0" * 16}, "short")
    assert "key" not in repr(ring).replace("current_key_id", "")


def test_no_secret_value_or_key_in_logs_or_errors(caplog: pytest.LogCaptureFixture, tmp_path: Any) -> None:
    from cairnflow.savers import open_saver

    key_b64 = base64.b64encode(K1).decode()
    ring = AesGcmCipher({"k1": K1}, "k1")
    saver = open_saver(f"file://{tmp_path}/s", cipher=ring)

    @task
    def read_card() -> str:
        return SECRET

    @task
    def charge(card: str) -> str:
        raise ValueError("card declined")  # the user's own message is stored, not the card

    @workflow
    def pay() -> str:
        card = read_card().result()
        interrupt("confirm?")
        return charge(card).result()

    messages: list[str] = []
    with caplog.at_level(logging.DEBUG):
        pay.run(thread_id="p", saver=saver)
        try:
            pay.resume("ok", thread_id="p", saver=saver)
        except ValueError as exc:
            messages.append(str(exc))
        wrong = open_saver(f"file://{tmp_path}/s", cipher=AesGcmCipher({"k1": K2}, "k1"))
        for attempt in (lambda: wrong.latest("p"), lambda: pay.resume(thread_id="p", saver=wrong)):
            try:
                attempt()
            except CairnflowError as exc:
                messages.append(str(exc))
                messages.append(repr(exc))
    assert len(messages) == 5
    text = caplog.text + "\n".join(messages) + repr(ring)
    for secret in (SECRET, "Lovelace", key_b64, K1.hex(), hashlib.sha256(K1).hexdigest()):
        assert secret not in text
