"""Privacy hooks: owner-only files and directories, and optional encryption of blobs at rest.

Encryption uses AES-256-GCM from the ``cryptography`` package. The key is 32 bytes, given as
url-safe base64 (``python -c "import base64, os; print(base64.urlsafe_b64encode(os.urandom(32))
.decode())"``, the same format as a Fernet key) in a file (``encryption_key_file``, mode 0600)
or in an environment variable (``encryption_key_env``). Each blob is stored as
``MAGIC || 12-byte nonce || ciphertext+tag`` with the column name as associated data, so a
blob copied into another column does not decrypt. Names, times and ids stay in clear text (the
store must search them); crops and vectors (the biometric data) are encrypted.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import stat
from pathlib import Path

from .errors import StoreUnavailable

LOG = logging.getLogger(__name__)

FILE_MODE = 0o600
DIR_MODE = 0o700
MAGIC = b"VMe1"
_NONCE = 12


def secure_dir(path: str | Path) -> Path:
    """Create ``path`` (and parents) if needed and make it 0700; returns the path.

    Shared directories (sticky, like /tmp), the file-system root and the home directory are
    never chmod-ed: a warning asks for a dedicated directory instead.
    """
    p = Path(path).expanduser()
    p.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    mode = p.stat().st_mode
    resolved = p.resolve()
    if mode & stat.S_ISVTX or resolved == Path(resolved.anchor) or resolved == Path.home():
        LOG.warning("%s is a shared directory; keep the memory in a dedicated directory "
                    "(it is not made private)", p)
        return p
    if stat.S_IMODE(mode) != DIR_MODE:
        try:
            os.chmod(p, DIR_MODE)
        except OSError as exc:  # read-only media: the store then opens read-only
            LOG.warning("could not make %s private (mode %o): %s", p, stat.S_IMODE(mode), exc)
    return p


def secure_file(path: str | Path) -> Path:
    """Create ``path`` if missing (without truncating) and make it 0600; returns the path."""
    p = Path(path)
    fd = os.open(p, os.O_RDWR | os.O_CREAT, FILE_MODE)
    os.close(fd)
    os.chmod(p, FILE_MODE)
    return p


def restrict_existing(path: str | Path) -> None:
    """chmod 0600 ``path`` when it exists (sqlite's -wal/-shm side files)."""
    p = Path(path)
    try:
        if p.exists() and stat.S_IMODE(p.stat().st_mode) != FILE_MODE:
            os.chmod(p, FILE_MODE)
    except OSError as exc:  # pragma: no cover - read-only media
        LOG.warning("could not restrict permissions of %s: %s", p, exc)


def _parse_key(text: bytes, origin: str) -> bytes:
    raw = text.strip()
    try:
        key = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError) as exc:
        raise StoreUnavailable(
            f"the encryption key from {origin} is not url-safe base64: {exc}", reason="encryption"
        ) from exc
    if len(key) != 32:
        raise StoreUnavailable(
            f"the encryption key from {origin} decodes to {len(key)} bytes; 32 are needed",
            reason="encryption",
        )
    return key


def load_key(key_file: str = "", key_env: str = "") -> bytes | None:
    """Return the 32-byte key from ``key_file`` or the env var named ``key_env``, or None."""
    if key_file:
        p = Path(key_file).expanduser()
        try:
            mode = stat.S_IMODE(p.stat().st_mode)
            data = p.read_bytes()
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot read the encryption key file {p}: {exc}", reason="encryption"
            ) from exc
        if mode & 0o077:
            LOG.warning("encryption key file %s is readable by others (mode %o); chmod 600 it",
                        p, mode)
        return _parse_key(data, f"file {p}")
    if key_env:
        value = os.environ.get(key_env, "")
        if value:
            return _parse_key(value.encode(), f"environment variable {key_env}")
    return None


class BlobCipher:
    """Encrypts and decrypts blobs with AES-256-GCM; with no key it passes blobs through."""

    def __init__(self, key: bytes | None = None) -> None:
        self._aead = None
        if key is not None:
            try:
                from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            except ImportError as exc:
                raise StoreUnavailable(
                    "an encryption key is configured but the 'cryptography' package is not "
                    "installed (pip install cryptography)",
                    reason="encryption",
                ) from exc
            if len(key) != 32:
                raise StoreUnavailable("the encryption key must be 32 bytes", reason="encryption")
            self._aead = AESGCM(key)

    @property
    def enabled(self) -> bool:
        """True when blobs are encrypted."""
        return self._aead is not None

    def encrypt(self, data: bytes, context: str) -> bytes:
        """Return ``data`` encrypted for column ``context`` (unchanged when disabled)."""
        if self._aead is None:
            return data
        nonce = os.urandom(_NONCE)
        return MAGIC + nonce + self._aead.encrypt(nonce, data, context.encode())

    def decrypt(self, blob: bytes, context: str) -> bytes:
        """Return the plain bytes of ``blob`` stored in column ``context``."""
        blob = bytes(blob)
        if self._aead is None or not blob.startswith(MAGIC):
            return blob  # no key (the store checks at open), or stored before encryption
        from cryptography.exceptions import InvalidTag

        nonce = blob[len(MAGIC): len(MAGIC) + _NONCE]
        try:
            return self._aead.decrypt(nonce, blob[len(MAGIC) + _NONCE:], context.encode())
        except InvalidTag as exc:
            raise StoreUnavailable(
                "a stored blob does not decrypt with the configured key (wrong key?)",
                reason="encryption",
            ) from exc
