"""One prefix (and key) per tenant: tenants neither see nor read each other's threads."""

from __future__ import annotations

import os
import runpy
from pathlib import Path

import pytest

from cairnflow.core import keys
from cairnflow.core.errors import DecryptionError
from cairnflow.core.store import ObjectStore

ROOT = Path(__file__).resolve().parents[2]


def load_example() -> dict[str, object]:
    return runpy.run_path(str(ROOT / "examples" / "multi_tenant.py"), run_name="example")


def test_tenants_are_isolated_on_one_store(store: ObjectStore) -> None:
    example = load_example()
    saver_for, review = example["saver_for"], example["review"]
    acme = saver_for(store, "acme", os.urandom(32))  # type: ignore[operator]
    globex = saver_for(store, "globex", os.urandom(32))  # type: ignore[operator]
    review.run("acme text", thread_id="doc-1", saver=acme)  # type: ignore[attr-defined]
    review.run("globex text", thread_id="doc-1", saver=globex)  # type: ignore[attr-defined]
    assert review.resume("ok", thread_id="doc-1", saver=acme).result["summary"] == "ACME TEXT"  # type: ignore[attr-defined]
    assert list(acme.threads()) == ["doc-1"]
    assert list(globex.threads()) == ["doc-1"]  # the same id in two tenants: two threads
    globex_head = globex.latest("doc-1")
    assert globex_head is not None and globex_head.status == "interrupted"

    # Globex's object copied to the same thread id and position under acme's prefix: the
    # header matches its new key (the prefix is not in it), so only acme's key stops it.
    review.run("globex only", thread_id="doc-3", saver=globex)  # type: ignore[attr-defined]
    stolen = store.get(keys.checkpoint_key("tenants/globex/", "doc-3", 0)).data
    store.put(keys.checkpoint_key("tenants/acme/", "doc-3", 0), stolen)
    with pytest.raises(DecryptionError, match="no key with id 'globex'"):
        acme.latest("doc-3")
    acme.delete_thread("doc-3", purge=True)

    acme.delete_thread("doc-1", purge=True)
    assert acme.latest("doc-1") is None
    assert globex.latest("doc-1") == globex_head  # untouched


def test_example_main_keeps_each_tenants_run_apart_and_encrypted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "store"
    monkeypatch.setenv("CAIRNFLOW_STORE", f"file://{root}")
    load_example()["main"]()  # type: ignore[operator]
    printed = capsys.readouterr().out.splitlines()
    acme = {"summary": "ACME'S CONTRACT", "verdict": "approve"}
    globex = {"summary": "GLOBEX'S SECRET PLAN", "verdict": "reject"}
    assert printed == [
        f"acme: {acme!r}",
        f"globex: {globex!r}",
        "acme threads: ['doc-1'] globex threads: ['doc-1']",
    ]
    stored = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    tenants = {key.split("/")[1] for key in stored if key.startswith("tenants/")}
    assert tenants == {"acme", "globex"}, sorted(stored)
    for secret in (b"secret plan", b"SECRET PLAN", b"contract", b"CONTRACT"):
        assert not any(secret in body for body in stored.values()), secret
