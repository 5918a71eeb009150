"""Bodies on disk: a byte range of a file that servers can send by sendfile."""

from __future__ import annotations

import os

#: Chunk size when a server without sendfile streams a file.
BLOCK_SIZE = 256 * 1024


class FileRange:
    """The bytes ``offset`` .. ``offset + length`` of a file, opened now.

    ``read`` stops at the end of the range, so a server that iterates the
    body sends exactly the range. ``fileno``, with the file positioned at
    ``offset``, lets ``wsgi.file_wrapper`` send the same bytes by sendfile
    (gunicorn sends Content-Length bytes from the current position).
    """

    __slots__ = ("__dict__", "_file", "remaining")

    def __init__(self, path: str, offset: int, length: int) -> None:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            if offset:
                os.lseek(fd, offset, os.SEEK_SET)
            self._file = os.fdopen(fd, "rb", buffering=0)
        except BaseException:
            os.close(fd)
            raise
        self.remaining = length

    def read(self, size: int = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        if size < 0 or size > self.remaining:
            size = self.remaining
        data = self._file.read(size)
        self.remaining -= len(data)
        return data

    def fileno(self) -> int:
        return self._file.fileno()

    def close(self) -> None:
        self._file.close()

    def __iter__(self) -> FileRange:
        return self

    def __next__(self) -> bytes:
        data = self.read(BLOCK_SIZE)
        if not data:
            raise StopIteration
        return data
