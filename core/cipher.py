"""The hook for client-side encryption of checkpoint bodies.

The core defines only the interface (standard library only); the AES-256-GCM
implementation lives in :mod:`cairnflow.encryption` (``pip install
"cairnflow[encryption]"``). A cipher is given the object's header bytes as
associated data: the header names the thread, the sequence number, the kind
and the key id, so an object moved to another thread or position, or whose
header was edited, fails to decrypt.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["Cipher"]


@runtime_checkable
class Cipher(Protocol):
    """Authenticated encryption with named keys."""

    @property
    def key_id(self) -> str:
        """The id of the key new objects are encrypted with (stored, in clear, in each object)."""
        ...

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> bytes:
        """Encrypt with the current key; the result must carry its own nonce."""
        ...

    def decrypt(self, ciphertext: bytes, associated_data: bytes, key_id: str) -> bytes:
        """Decrypt with the named key; raise DecryptionError if it is unknown or the check fails."""
        ...
