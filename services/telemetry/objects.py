"""Object storage for raw uploaded files: a small interface and a local-directory store.

Keys are ``/``-separated like S3 keys (``batches/<batch>/<file>/<name>``), so
an S3-compatible store can stand behind the same :class:`ObjectStore`
protocol. The local store writes each object to a temporary file beside its
final place and renames it only once complete, so a reader never sees half an
object; keys are checked so that no key reaches outside the root.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import unicodedata
import uuid
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO, Protocol

MAX_NAME_CHARS = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class InvalidKey(ValueError):
    """A key that could name something outside the store."""


class ObjectStore(Protocol):
    """Where raw files are kept."""

    async def put(self, key: str, chunks: AsyncIterator[bytes]) -> int:
        """Store the bytes of ``chunks`` under ``key`` (replacing any); answers the size.

        Nothing is stored when ``chunks`` raises.
        """
        ...

    def open(self, key: str) -> BinaryIO:
        """A seekable binary reader of the object (blocking; use it in a worker thread)."""
        ...

    async def delete(self, key: str) -> None:
        """Delete the object if it exists."""
        ...

    async def exists(self, key: str) -> bool:
        """True when the object exists."""
        ...


def safe_filename(name: str, *, fallback: str = "upload") -> str:
    """A name safe as the last segment of a key: no directories, no dots first, short.

    The display name is kept elsewhere; this one only has to be harmless on
    every file system and recognisable to whoever browses the store.
    """
    # Both separators count: a Windows client's "C:\\x\\data.csv" must not become a path.
    base = PureWindowsPath(PurePosixPath(name).name).name
    ascii_name = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    cleaned = _UNSAFE.sub("_", ascii_name).strip("._-")
    if len(cleaned) > MAX_NAME_CHARS:
        _, dot, suffix = cleaned.rpartition(".")
        keep = suffix[:10] if dot else ""
        cleaned = cleaned[: MAX_NAME_CHARS - len(keep) - 1].rstrip("._-") + (
            f".{keep}" if keep else ""
        )
    return cleaned or fallback


def check_key(key: str) -> tuple[str, ...]:
    """The segments of ``key``; raises InvalidKey for anything that is not a plain relative key."""
    segments = tuple(key.split("/"))
    if not key or any(
        not part or part in (".", "..") or "\\" in part or "\x00" in part or ":" in part
        for part in segments
    ):
        raise InvalidKey(f"invalid object key {key!r}")
    return segments


class LocalObjectStore:
    """Objects as files under ``root`` (``<data dir>/objects`` by default)."""

    def __init__(self, root: Path) -> None:
        self._root = root.resolve()

    @property
    def root(self) -> Path:
        """The directory holding every object."""
        return self._root

    def path_of(self, key: str) -> Path:
        """The file of ``key``; raises InvalidKey when it would lie outside the root."""
        path = self._root.joinpath(*check_key(key)).resolve()
        if not path.is_relative_to(self._root) or path == self._root:
            raise InvalidKey(f"invalid object key {key!r}")
        return path

    async def put(self, key: str, chunks: AsyncIterator[bytes]) -> int:
        """Write to a temporary file, then rename it into place (see the module docstring)."""
        path = self.path_of(key)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        handle = await asyncio.to_thread(temporary.open, "wb")
        size = 0
        try:
            try:
                async for chunk in chunks:
                    await asyncio.to_thread(handle.write, chunk)
                    size += len(chunk)
                await asyncio.to_thread(_flush, handle)
            finally:
                await asyncio.to_thread(handle.close)
            await asyncio.to_thread(os.replace, temporary, path)
        except BaseException:
            # Cancellation included: a half-written object must never stay behind.
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        return size

    def open(self, key: str) -> BinaryIO:
        """Open the object for reading."""
        return self.path_of(key).open("rb")

    async def delete(self, key: str) -> None:
        """Delete the object, and its directory when that is left empty."""
        path = self.path_of(key)

        def remove() -> None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # fails, as it should, when other files remain

        await asyncio.to_thread(remove)

    async def exists(self, key: str) -> bool:
        """True when the object exists."""
        path = self.path_of(key)
        return await asyncio.to_thread(path.is_file)


def _flush(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())
