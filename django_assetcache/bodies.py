"""Bodies on disk: a byte range of a file that servers can send by sendfile,
and a multipart/byteranges body read from a file in blocks."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence

from .replies import Part

#: Chunk size when a server without sendfile streams a file.
BLOCK_SIZE = 256 * 1024


class WrongSize(OSError):
    """A blob file whose size is not the blob's (cut short on disk, or
    replaced): sending it would contradict the announced Content-Length."""


def open_blob(path: str, size: int) -> int:
    """A descriptor on ``path``, checked to hold exactly ``size`` bytes.

    The one ``fstat`` is on the descriptor the response sends from, so the
    checked file is the sent file.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        actual = os.fstat(fd).st_size
    except BaseException:
        os.close(fd)
        raise
    if actual != size:
        os.close(fd)
        raise WrongSize(errno.EIO, f"{actual} bytes on disk, {size} expected", path)
    return fd


class _OpenBlob:
    """A blob file opened to be sent: what every body from disk shares.

    Iterating reads it in blocks of BLOCK_SIZE, for servers without sendfile.
    """

    # ``__dict__``: Django's WSGI handler sets ``close`` on the body it hands
    # to ``wsgi.file_wrapper``.
    __slots__ = ("__dict__", "_closed", "_fd")

    mode = "rb"

    def __init__(self, path: str, file_size: int) -> None:
        self._fd = open_blob(path, file_size)
        self._closed = False

    def read(self, size: int = -1) -> bytes:
        raise NotImplementedError

    def readable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._fd)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        data = self.read(BLOCK_SIZE)
        if not data:
            raise StopIteration
        return data


class FileRange(_OpenBlob):
    """The bytes ``offset`` .. ``offset + length`` of a file, opened now.

    ``read`` stops at the end of the range, so a server that iterates the
    body sends exactly the range. ``fileno``, with the descriptor positioned
    at the current position, lets ``wsgi.file_wrapper`` send the same bytes
    by sendfile (gunicorn sends Content-Length bytes from there).

    ``seek`` and ``tell`` speak in positions of the file, not of the range:
    gunicorn reads the start with ``lseek`` on ``fileno()`` and hands that
    position to ``socket.sendfile``, whose fallback (when ``os.sendfile``
    fails before sending anything, as on an aborted download) calls
    ``seek(position)`` and then ``read``. ``SEEK_END`` is the end of the
    range, so Django's ``FileResponse`` and waitress, which measure a body by
    seeking to its end, find the range's length. Seeking and telling cost no
    system call: the descriptor is moved only when ``fileno`` hands it out.
    """

    __slots__ = ("_fd_pos", "_pos", "end", "start")

    def __init__(self, path: str, offset: int, length: int, file_size: int) -> None:
        super().__init__(path, file_size)
        self.start = offset
        self.end = offset + length
        self._pos = offset
        self._fd_pos = 0

    @property
    def remaining(self) -> int:
        return max(self.end - self._pos, 0)

    def read(self, size: int = -1) -> bytes:
        count = self.end - self._pos
        if count <= 0:
            return b""
        if 0 <= size < count:
            count = size
        data = os.pread(self._fd, count, self._pos)
        self._pos += len(data)
        if not data:
            # Cut short after it was opened: end here rather than loop.
            self._pos = self.end
        return data

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, position: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_CUR:
            position += self._pos
        elif whence == os.SEEK_END:
            position += self.end
        elif whence != os.SEEK_SET:
            raise ValueError(f"invalid whence ({whence})")
        if position < self.start:
            # Before the range: bytes the response does not announce.
            raise OSError(errno.EINVAL, f"position {position} is before the range start {self.start}")
        self._pos = position
        return position

    def fileno(self) -> int:
        if self._fd_pos != self._pos:
            os.lseek(self._fd, self._pos, os.SEEK_SET)
            self._fd_pos = self._pos
        return self._fd


class FileParts(_OpenBlob):
    """A multipart/byteranges body from a file: each part's head (the
    boundary and part headers, prepared by ``http``), then its bytes.

    It has no ``fileno`` on purpose: a server must iterate it (or call
    ``read``) rather than send the file by sendfile. Each ``read`` returns
    at most ``size`` bytes, so a range is read in blocks and a body of any
    size never sits whole in memory.
    """

    __slots__ = ("_at", "_index", "_parts", "remaining")

    def __init__(self, path: str, file_size: int, parts: Sequence[Part], length: int) -> None:
        super().__init__(path, file_size)
        self._parts = parts
        self._index = 0
        #: Bytes of the current part (head, then range) already returned.
        self._at = 0
        self.remaining = length

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self.remaining:
            size = self.remaining
        chunks: list[bytes] = []
        while size > 0 and self._index < len(self._parts):
            part = self._parts[self._index]
            head = len(part.head)
            if self._at < head:
                data = part.head[self._at : self._at + size]
            else:
                position = part.start + self._at - head
                count = min(size, part.stop - position)
                data = os.pread(self._fd, count, position) if count > 0 else b""
                if count > 0 and not data:
                    # Cut short after it was opened: end the body here.
                    self._index = len(self._parts)
                    break
            self._at += len(data)
            size -= len(data)
            self.remaining -= len(data)
            chunks.append(data)
            if self._at >= head + part.stop - part.start:
                self._index += 1
                self._at = 0
        return b"".join(chunks)
