"""Encrypted stores: every command reads them with the key configuration the library uses."""

from __future__ import annotations

import pytest

from cairnflow.encryption import AesGcmCipher, generate_key
from cairnflow.savers import open_saver
from tests.cli.flows import order
from tests.cli.support import cli
from tests.emulators import StoreLocation

KEYS = "CAIRNFLOW_ENCRYPTION_KEYS"


@pytest.fixture
def encrypted(local_location: StoreLocation, monkeypatch: pytest.MonkeyPatch) -> str:
    ring = f"k1:{generate_key()}"
    monkeypatch.setenv(KEYS, ring)
    saver = open_saver(local_location.url, cipher=AesGcmCipher.from_env())
    order.run({"a": 5, "b": 2}, thread_id="secret", saver=saver)
    return ring


def test_commands_read_an_encrypted_store_with_the_library_keys(
    local_location: StoreLocation,
    encrypted: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = local_location.url
    shown = cli(capsys, "show", url, "secret", "--json").json()
    assert shown["values_readable"] is True and shown["input"] == {"a": 5, "b": 2}
    assert shown["interrupt"]["value"] == {"question": "ship?", "x": 7}
    listed = cli(capsys, "threads", url, "--json").json()["threads"]
    assert [(t["thread_id"], t["status"], t["waiting_for"]) for t in listed] == [
        ("secret", "interrupted", {"question": "ship?", "x": 7})
    ]
    history = cli(capsys, "history", url, "secret", "--json").json()["checkpoints"]
    assert all(c["records"] is not None for c in history)
    assert cli(capsys, "verify", url).code == 0

    # Without the keys: headers only, and the output says what to set.
    monkeypatch.delenv(KEYS)
    blind = cli(capsys, "show", url, "secret", "--json").json()
    assert blind["values_readable"] is False and KEYS in blind["unreadable"]
    assert f"values not shown: encrypted: set {KEYS}" in cli(capsys, "show", url, "secret").out
    assert cli(capsys, "threads", url, "--json").json()["threads"][0]["waiting_for"] is None

    # With the wrong key: the objects fail authentication, reported as unreadable, never as values.
    monkeypatch.setenv(KEYS, f"k1:{generate_key()}")
    wrong = cli(capsys, "threads", url, "--json").json()["threads"][0]
    assert wrong["status"] == "corrupt" and "authentication failed" in wrong["error"]


def test_langgraph_threads_encrypted_by_langgraph_are_read_with_its_key(
    local_location: StoreLocation, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("Crypto")
    from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

    from cairnflow.langgraph import LangGraphSaver
    from tests.cli import graphs

    monkeypatch.setenv("LANGGRAPH_AES_KEY", "0123456789abcdef")  # LangGraph's own setting
    saver = LangGraphSaver.from_url(local_location.url, serde=EncryptedSerializer.from_pycryptodome_aes())
    app = graphs.build(local_location.url)
    app.checkpointer = saver
    app.invoke({"items": ["x"]}, graphs.cfg("lg-secret"))
    raw = b"".join(saver.store.get(o.key).data for o in saver.store.list(""))
    assert b'"x"' not in raw and b"question" not in raw  # stored encrypted

    shown = cli(capsys, "show", local_location.url, "lg-secret", "--json").json()
    assert shown["values"]["items"] == ["x", "a"]

    # Without LangGraph's key the values cannot be read, and the command says so.
    monkeypatch.delenv("LANGGRAPH_AES_KEY")
    from cairnflow.ops import lgraph

    lgraph._cache.clear()
    blind = cli(capsys, "show", local_location.url, "lg-secret")
    assert blind.code == 3 and "set LANGGRAPH_AES_KEY" in blind.err
