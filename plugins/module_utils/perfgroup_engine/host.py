"""Reading small things from the host: one way to read a small file, digests, owner and mode, the
setup record. Read layer: no side effects, no root needed, nothing heavy imported at import time
(the audit path runs through here every few minutes on every node).
"""

from __future__ import annotations

import errno
import os
import stat

from .capabilities import XATTR_NAME, CapabilityError, FileCaps, decode
from .state import State, StateError, StatKey, parse

TYPE_CHECKING = False  # as typing.TYPE_CHECKING (mypy knows the name), without importing typing at run time
if TYPE_CHECKING:
    from typing import Any


def read_text(path: str, limit: int = 1 << 20, exact: bool = False) -> str | None:
    """A small text file, None if missing or unreadable. exact: every byte and line ending kept
    (undecodable bytes as surrogates), for files perfgroup edits and must write back byte for byte."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape" if exact else "replace",
                  newline="" if exact else None) as handle:
            return handle.read(limit)
    except OSError:
        return None


def read_int(path: str) -> int | None:
    text = read_text(path, 64)
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def key_of(info: os.stat_result) -> StatKey:
    return StatKey(info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def sha256_file(path: str) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return sha256_fd(fd)
    finally:
        os.close(fd)


def sha256_fd(fd: int) -> str:
    """sha256 of what an open file holds from its current offset to the end."""
    import hashlib  # lazily: a converged node's audit never hashes

    digest = hashlib.sha256()
    for chunk in iter(lambda: os.read(fd, 1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    return _small_sha256(text.encode()).hexdigest()  # type: ignore[no-any-return]


def _small_sha256(data: bytes) -> Any:
    """sha256 for the audit's few small files: CPython's own implementation where it is built in,
    since hashlib first loads OpenSSL's libcrypto (2-3 ms per run, more than the hashing)."""
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]  # Python <= 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found]  # Python >= 3.12
        except ImportError:
            from hashlib import sha256  # neither built in: OpenSSL's, as sha256_file
    return sha256(data)


def digest(path: str, key: StatKey | None, known_key: StatKey | None, known_sha: str | None) -> str | None:
    """sha256 of path, reusing the recorded one when the stat identity is unchanged (cheap audits)."""
    if key is not None and known_key is not None and key == known_key and known_sha:
        return known_sha
    return sha256_file(path)


def read_caps(path: str) -> tuple[FileCaps | None, str | None]:
    try:
        raw = os.getxattr(path, XATTR_NAME, follow_symlinks=False)
    except OSError as error:
        if error.errno in (errno.ENODATA, errno.ENOTSUP, errno.ENOENT):
            return None, None
        return None, f"cannot read {XATTR_NAME}: {error.strerror}"
    try:
        return decode(raw), None
    except CapabilityError as error:
        return None, str(error)


def load_state(path: str) -> tuple[State | None, str | None]:
    text = read_text(path)
    if text is None:
        return None, "missing" if not os.path.lexists(path) else "unreadable"
    try:
        return parse(text), None
    except StateError as error:
        return None, f"unusable ({error})"


def has_caps(path: str) -> bool:
    try:
        os.getxattr(path, XATTR_NAME, follow_symlinks=False)
    except OSError:
        return False
    return True


def owner_mode(path: str) -> tuple[int, int, str] | None:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    kind = "dir" if stat.S_ISDIR(info.st_mode) else "file" if stat.S_ISREG(info.st_mode) else "other"
    return info.st_uid, stat.S_IMODE(info.st_mode), kind
