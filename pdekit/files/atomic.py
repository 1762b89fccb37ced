"""Write files atomically: into a temporary file in the same folder, renamed into place only when
complete and on disk, so a reader (or a resumed run) never sees a half-written file, even after a
power cut.  Every file gets the permissions the user's umask gives (``mkstemp`` alone makes them
``-rw-------``, unreadable by colleagues sharing a dataset)."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def current_umask() -> int:
    """The process's umask, read without changing it where Linux allows (``os.umask`` can only be
    read by setting it, which races with other threads)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_path(path, directory: bool = False) -> None:
    """Flush a file (or a folder's entries) to disk."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # some file systems do not open folders; nothing more can be done there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path, suffix: str | None = None):
    """Yield a temporary path beside ``path`` (same suffix unless given, so writers that infer the
    format from it work); on success it is flushed, given the umask's permissions and renamed over
    ``path`` (then the folder is flushed); on failure it is removed."""
    path = Path(path)
    folder = path.resolve().parent
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.",
                               suffix=path.suffix if suffix is None else suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(folder, directory=True)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
