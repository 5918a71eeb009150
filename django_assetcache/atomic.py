"""Replace a file whole: write a temporary file beside it, sync, rename.

Readers see the old file or the new one, never a part; a crash leaves at
most a temporary file. The temporary file is created with ``open(…, "xb")``
(mode 0666 less the umask, as Django's own storage does), not with
``tempfile``, whose 0600 would keep servers running as another user from
reading what a deploy step wrote.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_write(
    target: str | os.PathLike[str],
    prefix: str,
    temp_dir: str | os.PathLike[str] | None = None,
    suffix: str = ".tmp",
) -> Iterator[BinaryIO]:
    """A new file to write; it replaces ``target`` when the block ends
    without an exception, and is removed when it raises.

    The file's ``name`` is the temporary path, for checks made before it
    takes the target's place. It is made in ``temp_dir`` when given (which
    must be on the target's file system), else beside the target.
    """
    final = Path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(temp_dir or final.parent) / f"{prefix}{secrets.token_hex(8)}{suffix}"
    try:
        with open(temp, "xb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
