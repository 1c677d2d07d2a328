"""The embedded default: objects as files under one directory.

Guarantees, across any number of processes on one machine sharing the
directory (a local file system, not NFS):

* **create-only is atomic**: the body goes to a hidden temporary file, is
  fsynced, then published with ``os.link`` (which fails if the name exists);
  no reader ever sees a half-written object, and of two racing creators
  exactly one wins.
* **compare-and-swap is atomic**: an update takes an exclusive ``flock`` on a
  per-key lock file, checks the current version, then publishes with
  ``os.replace``. Readers take no lock: ``os.replace`` swaps whole files.
* **a crash mid-write leaves nothing visible**: at worst a hidden temporary
  file, which listings skip.

A key cannot also be the "directory" of other keys here (``a`` and ``a/b``);
the checkpoint protocol never makes such pairs, and the local store refuses
them with ``AlreadyExistsError``/``ValueError`` rather than guessing.

The version (ETag) of an object is a digest of its content, so it cannot
repeat for different content (no ABA through recycled inode numbers).

:class:`AsyncLocalStore` is the same store for asyncio, with the same files
and guarantees (both may share one directory, even across processes).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import hashlib
import os
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from cairnflow.core.errors import (
    AlreadyExistsError,
    NotFoundError,
    PreconditionFailedError,
    StoreAccessError,
)
from cairnflow.core.store import ObjectInfo, StoredObject
from cairnflow.savers._abase import AsyncBackendStore
from cairnflow.savers._base import BackendStore, Op

__all__ = ["AsyncLocalStore", "LocalStore"]

_LOCK_DIR = ".locks"
_TMP_PREFIX = ".tmp-"
T = TypeVar("T")
_ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.%~+=")


def _etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


class LocalStore(BackendStore):
    """Objects stored as files below ``root`` (created if missing)."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root).absolute()
        self.url = f"file://{self.root}"
        self._fsync = fsync
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreAccessError(f"cannot create store directory: {exc.strerror}", store=self.url) from exc

    # ------------------------------------------------------------------ keys

    def _path(self, key: str) -> Path:
        """Map a key to a path, refusing anything that could leave the root."""
        segments = key.split("/")
        for seg in segments:
            if not seg or seg.startswith(".") or len(seg.encode()) > 255 or not _ALLOWED.issuperset(seg):
                raise ValueError(f"key not allowed in a local store: {key!r}")
        return self.root.joinpath(*segments)

    # ------------------------------------------------------------------ write

    def _write_temp(self, directory: Path, data: bytes) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        # not uuid.uuid4(): callers (LangGraph's tests among them) patch it for deterministic ids
        tmp = directory / f"{_TMP_PREFIX}{secrets.token_hex(16)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self._fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        return tmp

    def _sync_dir(self, directory: Path) -> None:
        if not self._fsync or os.name == "nt":
            return
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write(self, key: str, data: bytes, op: Op, etag: str | None) -> str:
        path = self._path(key)
        # A concurrent delete may remove the (empty) directory between our
        # mkdir and our link/replace; try again a few times in that case. (Its
        # rmdir between mkdir's attempt and its is-a-directory check makes
        # mkdir(exist_ok=True) raise FileExistsError: the same race.)
        for _ in range(5):
            tmp: Path | None = None
            try:
                tmp = self._write_temp(path.parent, data)
                if op is Op.CREATE:
                    try:
                        os.link(tmp, path)
                    except FileExistsError:
                        raise AlreadyExistsError("object exists", key=key, store=self.url) from None
                elif op is Op.UPDATE:
                    with self._key_lock(key):
                        try:
                            current = _etag(path.read_bytes())
                        except FileNotFoundError:
                            raise PreconditionFailedError(
                                "object does not exist", key=key, store=self.url
                            ) from None
                        if current != etag:
                            raise PreconditionFailedError("object version changed", key=key, store=self.url)
                        os.replace(tmp, path)
                else:
                    with self._key_lock(key):
                        os.replace(tmp, path)
            except (FileNotFoundError, FileExistsError):
                continue
            finally:
                if tmp is not None:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
            self._sync_dir(path.parent)
            return _etag(data)
        raise StoreAccessError("directory kept vanishing during write", key=key, store=self.url)

    @contextlib.contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        lock_dir = self.root / _LOCK_DIR
        lock_dir.mkdir(exist_ok=True)
        lock_path = lock_dir / hashlib.sha256(key.encode()).hexdigest()[:40]
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.name == "nt":  # pragma: no cover - exercised on Windows only
                import msvcrt

                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # type: ignore[attr-defined,unused-ignore]
            else:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    # ------------------------------------------------------------------ read

    def _read(self, key: str) -> StoredObject:
        try:
            data = self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError("no such object", key=key, store=self.url) from None
        return StoredObject(data, _etag(data))

    def _list(self, prefix: str, start_after: str | None, limit: int | None) -> Iterator[ObjectInfo]:
        dir_part, _, _ = prefix.rpartition("/")
        start = self._path(dir_part) if dir_part else self.root
        walk = self._walk(start, f"{dir_part}/" if dir_part else "", prefix, start_after)
        for key, size in walk:  # lazily: list() stops after limit keys
            yield ObjectInfo(key, size)

    def _walk(
        self, directory: Path, key_prefix: str, prefix: str, start_after: str | None
    ) -> Iterator[tuple[str, int]]:
        """Yield (key, size) below ``directory`` in byte order of keys, lazily."""
        try:
            with os.scandir(directory) as it:
                entries = [e for e in it if not e.name.startswith(".")]
        except (FileNotFoundError, NotADirectoryError):
            return
        # Sorting a directory's name as "name/" puts it where its keys sort.
        ordered = sorted(
            ((key_prefix + e.name + ("/" if e.is_dir(follow_symlinks=False) else ""), e) for e in entries),
            key=lambda pair: pair[0],
        )
        for sort_key, entry in ordered:
            if sort_key.endswith("/"):
                # Descend only where the subtree can hold matching keys.
                if not (sort_key.startswith(prefix) or prefix.startswith(sort_key)):
                    continue
                if (
                    start_after is not None
                    and start_after >= sort_key
                    and not start_after.startswith(sort_key)
                ):
                    continue
                yield from self._walk(Path(entry.path), sort_key, prefix, start_after)
            else:
                if not sort_key.startswith(prefix):
                    continue
                if start_after is not None and sort_key <= start_after:
                    continue
                try:
                    size = entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue
                yield sort_key, size

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        dir_part, _, name_start = prefix.rpartition("/")
        directory = self._path(dir_part) if dir_part else self.root
        base = f"{dir_part}/" if dir_part else ""
        try:
            with os.scandir(directory) as it:
                names = sorted(
                    (
                        e.name
                        for e in it
                        if not e.name.startswith(".") and e.name.startswith(name_start) and e.is_dir()
                    ),
                    key=lambda name: name + "/",  # key order of "name/...", not of "name"
                )
        except (FileNotFoundError, NotADirectoryError):
            return
        for name in names:
            if any(True for _ in self._walk(directory / name, f"{base}{name}/", prefix, None)):
                yield f"{base}{name}/"  # only folders that still hold objects

    # ------------------------------------------------------------------ delete

    def _remove(self, key: str) -> None:
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.unlink(path)
        self._prune_empty_dirs(path.parent)

    def _prune_empty_dirs(self, directory: Path) -> None:
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent


_FILE_THREADS = 8  # enough to keep a disk's queue busy with fsyncs; more only adds switching
_file_pool: concurrent.futures.ThreadPoolExecutor | None = None
_file_pool_lock = threading.Lock()


async def _off_loop(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in the file-I/O pool (as ``asyncio.to_thread``, context included)."""
    global _file_pool
    if _file_pool is None:
        with _file_pool_lock:
            if _file_pool is None:
                # Its own pool, not the loop's default executor: plain ``def`` tasks run
                # there, and a few blocked ones must not hold up every checkpoint write.
                _file_pool = concurrent.futures.ThreadPoolExecutor(
                    _FILE_THREADS, thread_name_prefix="cairnflow-file"
                )
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(_file_pool, context.run, fn, *args)


class AsyncLocalStore(AsyncBackendStore):
    """Objects stored as files below ``root``, for asyncio: a :class:`LocalStore`'s requests, awaited.

    Writes and deletes run in a worker thread, as aiofiles and anyio do for
    local files (here a small pool of the module's own, not the loop's default
    executor, where plain ``def`` tasks run: blocked tasks there must not hold
    up checkpoint writes): the standard library has no
    asynchronous file I/O, and a write fsyncs the object and its directory,
    which takes milliseconds and would stop every other task of the loop
    meanwhile. A write whose task is cancelled while it waits still finishes in
    its thread (as a cloud request may land after its caller gave up); the log
    recognises its own object on a retry. (A CAS update's ``flock`` is held inside that one thread
    call, so it never blocks the loop; another process holds it for one short
    write at most.) Reads and listings stay inline: with no ``fsync`` they are
    a few system calls on cached pages, cheaper than the hand-off to a thread.
    Use ``fsync=False`` where durability across power loss does not matter.
    """

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.sync = LocalStore(root, fsync=fsync)
        self.root = self.sync.root
        self.url = self.sync.url

    async def _write(self, key: str, data: bytes, op: Op, etag: str | None) -> str:
        # The same create-only (link) / CAS (flock + replace) code as the sync store, off the loop.
        return await _off_loop(self.sync._write, key, data, op, etag)

    async def _read(self, key: str) -> StoredObject:
        # Inline: reading a small file is microseconds; a thread hand-off costs more.
        return self.sync._read(key)

    async def _list(
        self, prefix: str, start_after: str | None, limit: int | None
    ) -> AsyncIterator[ObjectInfo]:
        for info in self.sync._list(prefix, start_after, limit):
            yield info

    async def list_prefixes(self, prefix: str) -> AsyncIterator[str]:
        for folder in self.sync.list_prefixes(prefix):
            yield folder

    async def _remove(self, key: str) -> None:
        # unlink and rmdir of emptied folders touch directory metadata: off the loop, as writes.
        await _off_loop(self.sync._remove, key)
