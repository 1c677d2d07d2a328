"""Two tenants on one store: one prefix and one encryption key per tenant.

python examples/multi_tenant.py   # needs: pip install "cairnflow[encryption]"
"""

from __future__ import annotations

import os
import tempfile

from cairnflow.core import CheckpointLog, interrupt, task, workflow
from cairnflow.core.store import ObjectStore
from cairnflow.encryption import AesGcmCipher
from cairnflow.savers import open_store


@task
def summarise(text: str) -> str:
    return text.upper()[:40]


@workflow(name="review")
def review(doc: str) -> dict[str, str]:
    summary = summarise(doc).result()
    verdict = interrupt({"summary": summary})
    return {"summary": summary, "verdict": verdict}


def saver_for(store: ObjectStore, tenant: str, key: bytes) -> CheckpointLog:
    """Each tenant: its own prefix (scope its IAM role to it) and its own key."""
    return CheckpointLog(store, prefix=f"tenants/{tenant}/", cipher=AesGcmCipher({tenant: key}, tenant))


def main() -> None:
    store, _ = open_store(os.environ.get("CAIRNFLOW_STORE", f"file://{tempfile.mkdtemp()}"))
    acme = saver_for(store, "acme", os.urandom(32))
    globex = saver_for(store, "globex", os.urandom(32))
    review.run("acme's contract", thread_id="doc-1", saver=acme)
    review.run("globex's secret plan", thread_id="doc-1", saver=globex)  # same id, other tenant
    print("acme:", review.resume("approve", thread_id="doc-1", saver=acme).result)
    print("globex:", review.resume("reject", thread_id="doc-1", saver=globex).result)
    print("acme threads:", list(acme.threads()), "globex threads:", list(globex.threads()))


if __name__ == "__main__":
    main()
