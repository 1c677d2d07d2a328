"""Where a put goes: the fencing rule, decided from what this saver loaded and wrote.

Nothing of this travels in configs (rule 7: LangGraph users see only ``thread_id``,
``checkpoint_ns`` and ``checkpoint_id``). Instead the saver remembers, per
(thread, namespace):

* **strict successors**: for a checkpoint this saver loaded as the latest (at head
  position ``h``) or wrote itself (at ``s``), the one position a put on it may take
  (``h + 1``, ``s + 1``). This is what fences a run: its first put continues what it
  loaded, every later put what it wrote.
* a **plan**: the checkpoint this saver believes to be the head (the last one it
  loaded as the latest or wrote), and the position after it. An empty namespace
  plans position 0 (or just above a tombstone) for a put without a parent.
* the **positions** of checkpoints it wrote, loaded or listed.

Handing a checkpoint out as a *handle* (by id, in ``list``, as a ``parent_config``)
forgets its strict successor unless it is the plan's checkpoint: a put on it is then
time travel. A put on parent ``P`` goes (see :meth:`Fences.target`):

================================================  ============================================
``P`` has a strict successor                      exactly there
no parent, and the plan says "empty"              exactly to the planned position (new thread)
no parent otherwise                               appended at the head (a subgraph afresh)
``P`` at a known position                         exactly after ``P`` if it is still the head,
                                                  else appended at the head as a fork
``P`` unknown, plan fresh from a load             exactly to the planned position (durability
                                                  ``"exit"``: the run's earlier checkpoints
                                                  were never stored)
``P`` unknown otherwise                           looked up in the store, then as above
================================================  ============================================

"Exactly" is a create-only write of that log key: if another writer took it, the put
fails with :class:`~cairnflow.core.errors.ConflictError` and nothing becomes visible.
Two writers resuming one thread from one checkpoint therefore never both commit,
whether they are two processes or two runs in one process, for every put of a run
(``invoke``, ``stream``, ``Command(resume=...)``, each superstep of
``bulk_update_state``).
"""

from __future__ import annotations

from dataclasses import dataclass

from cairnflow.core.errors import ConflictError
from cairnflow.langgraph._io import LRU

__all__ = ["Fences", "Target", "conflict"]

_CACHE_SIZE = 4096


@dataclass(frozen=True)
class _Plan:
    parent: str | None  # the checkpoint the next put continues (None: the namespace was empty)
    next_seq: int  # the log position that put must take
    loaded: bool  # set by loading the latest, not yet used by a put


@dataclass(frozen=True)
class Target:
    """Where one put goes: ``exact`` position, or after the head (``parent_seq`` if known)."""

    exact: int | None = None
    parent_seq: int | None = None
    lookup: bool = False  # the parent's position is unknown: find it in the store first


class Fences:
    """Per-saver memory of strict successors, plans and positions; thread-safe (bounded LRUs)."""

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self._plans = LRU(size)  # (thread, ns) -> _Plan
        self._strict = LRU(size)  # (thread, ns, checkpoint id) -> the position a put on it must take
        self._seqs = LRU(size)  # (thread, ns, checkpoint id) -> log position

    # ---------------------------------------------------------------- what we learn

    def loaded_latest(
        self, thread_id: str, ns: str, checkpoint_id: str | None, seq: int | None, head: int
    ) -> None:
        """``get_tuple`` without an id found ``checkpoint_id`` at ``seq`` (None: nothing), head ``head``."""
        if checkpoint_id is not None and seq is not None:
            self._seqs.put((thread_id, ns, checkpoint_id), seq)
            self._strict.put((thread_id, ns, checkpoint_id), head + 1)
        self._plans.put((thread_id, ns), _Plan(checkpoint_id, head + 1, True))

    def handed_out(self, thread_id: str, ns: str, checkpoint_id: str, seq: int | None = None) -> None:
        """A checkpoint given out as a handle (by id, listed, as a parent): a put on it is time
        travel, unless it is the checkpoint this saver believes to be the head."""
        if seq is not None:
            self._seqs.put((thread_id, ns, checkpoint_id), seq)
        plan: _Plan | None = self._plans.get((thread_id, ns))
        if plan is None or plan.parent != checkpoint_id:
            self._strict.discard((thread_id, ns, checkpoint_id))

    def seen(self, thread_id: str, ns: str, checkpoint_id: str, seq: int) -> None:
        """A position learned by looking an id up or copying."""
        self._seqs.put((thread_id, ns, checkpoint_id), seq)

    def wrote(self, thread_id: str, ns: str, checkpoint_id: str, seq: int) -> None:
        self._seqs.put((thread_id, ns, checkpoint_id), seq)
        self._strict.put((thread_id, ns, checkpoint_id), seq + 1)
        self._plans.put((thread_id, ns), _Plan(checkpoint_id, seq + 1, False))

    def plan_seq(self, thread_id: str, ns: str) -> int | None:
        """Position of the checkpoint this saver believes to be the head, if known."""
        plan: _Plan | None = self._plans.get((thread_id, ns))
        return None if plan is None or plan.parent is None else self.seq_of(thread_id, ns, plan.parent)

    def is_future(self, thread_id: str, ns: str, checkpoint_id: str) -> bool:
        """Whether ``checkpoint_id`` is newer than the head this saver believes in (LangGraph's
        ids are time-ordered uuid6): a checkpoint about to be put, not one to look up."""
        plan: _Plan | None = self._plans.get((thread_id, ns))
        return plan is not None and (plan.parent is None or checkpoint_id > plan.parent)

    def seq_of(self, thread_id: str, ns: str, checkpoint_id: str) -> int | None:
        seq = self._seqs.get((thread_id, ns, checkpoint_id))
        return None if seq is None else int(seq)

    def forget(self, thread_id: str, ns: str | None = None, checkpoint_ids: set[str] | None = None) -> None:
        """Drop the positions of deleted checkpoints. Strict successors stay: the position a
        fenced writer must take is now behind a tombstone or pointer, so it still conflicts."""

        def hit(key: tuple[str, ...]) -> bool:
            if key[0] != thread_id or (ns is not None and key[1] != ns):
                return False
            return checkpoint_ids is None or (len(key) > 2 and key[2] in checkpoint_ids)

        self._seqs.discard_where(hit)

    # ---------------------------------------------------------------- the rule

    def target(self, thread_id: str, ns: str, parent: str | None) -> Target:
        """Where a put on ``parent`` goes (see the module docstring)."""
        plan: _Plan | None = self._plans.get((thread_id, ns))
        if parent is None:
            if plan is not None and plan.parent is None:
                return Target(exact=plan.next_seq)
            return Target()
        strict = self._strict.get((thread_id, ns, parent))
        if strict is not None:
            return Target(exact=int(strict))
        seq = self.seq_of(thread_id, ns, parent)
        if seq is not None:
            return Target(parent_seq=seq)
        if plan is not None and plan.loaded:
            return Target(exact=plan.next_seq)
        return Target(lookup=True)


def conflict(thread_id: str, ns: str, seq: int, why: str) -> ConflictError:
    """The error a fenced writer gets: says who, where, and what to do."""
    where = f"thread {thread_id!r}" + (f" namespace {ns!r}" if ns else "")
    return ConflictError(
        f"{where} was advanced by another writer: {why} (log position {seq}); "
        "load the thread again to continue from its latest checkpoint",
        thread_id=thread_id,
    )
