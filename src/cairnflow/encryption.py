"""Client-side encryption of checkpoint bodies with AES-256-GCM.

``pip install "cairnflow[encryption]"`` (the ``cryptography`` package).

::

    from cairnflow.encryption import AesGcmCipher
    from cairnflow.savers import open_saver

    cipher = AesGcmCipher.from_env()                 # CAIRNFLOW_ENCRYPTION_KEYS="k2:<b64>,k1:<b64>"
    saver = open_saver("s3://bucket/app", cipher=cipher)

Every object body is encrypted with a fresh 96-bit nonce under the *current*
key; the key's id is stored in the object's header, in clear, so objects
written under older keys stay readable while the ring still holds them (key
rotation: put the new key first, keep the old ones after it). The whole
header (thread id, sequence number, kind, status, key id) is the associated
data: an object copied to another thread or position, or whose header was
edited, fails authentication with :class:`DecryptionError`.

Keys come from a mapping of key id to 32-byte key, from the environment, or
from a callable ``key_id -> bytes`` (e.g. a data key unwrapped by AWS KMS,
GCP KMS or Azure Key Vault, cached by you). The header itself (thread id,
status, workflow name, times) is not encrypted; object keys are not either.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cairnflow.core.errors import DecryptionError

__all__ = ["DEFAULT_ENV_VAR", "AesGcmCipher", "generate_key"]

DEFAULT_ENV_VAR = "CAIRNFLOW_ENCRYPTION_KEYS"
_NONCE = 12
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def generate_key() -> str:
    """A new random 256-bit key, base64-encoded (for the environment variable)."""
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode("ascii")


class AesGcmCipher:
    """AES-256-GCM with a key ring; implements :class:`cairnflow.core.cipher.Cipher`."""

    def __init__(self, keys: Mapping[str, bytes] | Callable[[str], bytes], current_key_id: str) -> None:
        if not _KEY_ID.match(current_key_id):
            raise ValueError("key ids are 1-64 characters of A-Z a-z 0-9 . _ -")
        self._lookup: Callable[[str], bytes]
        if callable(keys):
            self._lookup = keys
        else:
            ring = dict(keys)
            for kid, key in ring.items():
                _check_key(kid, key)

            def lookup(kid: str) -> bytes:
                try:
                    return ring[kid]
                except KeyError:
                    raise DecryptionError(f"no key with id {kid!r} in the key ring") from None

            self._lookup = lookup
        self._current = current_key_id
        self._aead_cache: dict[str, AESGCM] = {}
        self._aead(current_key_id)  # fail now, not at the first write, if the current key is bad

    @classmethod
    def from_env(cls, var: str = DEFAULT_ENV_VAR, environ: Mapping[str, str] | None = None) -> AesGcmCipher:
        """Read ``id:base64key[,id:base64key...]`` from an environment variable; the first is current."""
        raw = (environ if environ is not None else os.environ).get(var, "")
        ring: dict[str, bytes] = {}
        order: list[str] = []
        for item in filter(None, (part.strip() for part in raw.split(","))):
            kid, sep, encoded = item.partition(":")
            if not sep:
                raise ValueError(f"{var}: expected id:base64key, got an item without ':'")
            try:
                ring[kid] = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"{var}: key {kid!r} is not valid base64") from None
            order.append(kid)
        if not order:
            raise ValueError(
                f"{var} is empty: set it to id:base64key (see cairnflow.encryption.generate_key)"
            )
        return cls(ring, order[0])

    @property
    def key_id(self) -> str:
        return self._current

    def _aead(self, kid: str) -> AESGCM:
        aead = self._aead_cache.get(kid)
        if aead is None:
            key = self._lookup(kid)
            _check_key(kid, key)
            aead = self._aead_cache[kid] = AESGCM(key)
        return aead

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead(self._current).encrypt(nonce, plaintext, associated_data)

    def decrypt(self, ciphertext: bytes, associated_data: bytes, key_id: str) -> bytes:
        if len(ciphertext) < _NONCE + 16:
            raise DecryptionError("ciphertext too short")
        aead = self._aead(key_id)
        try:
            return aead.decrypt(ciphertext[:_NONCE], ciphertext[_NONCE:], associated_data)
        except InvalidTag:
            raise DecryptionError(
                f"authentication failed with key {key_id!r}: wrong key, or the object was altered or moved"
            ) from None

    def __repr__(self) -> str:  # never show key material
        return f"AesGcmCipher(current_key_id={self._current!r})"


def _check_key(kid: str, key: bytes) -> None:
    if not _KEY_ID.match(kid):
        raise ValueError("key ids are 1-64 characters of A-Z a-z 0-9 . _ -")
    if not isinstance(key, (bytes, bytearray)) or len(key) != 32:
        raise ValueError(f"key {kid!r} must be 32 bytes (AES-256)")
