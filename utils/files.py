"""Where the project may write a file: only over a regular file or where none is, and every refusal one line.

    kind_of(os.lstat(path).st_mode)  # "a folder", "a FIFO", ... ; None for a regular file
    check_target(path)       # UserError unless `path` is absent or a regular file in a folder we can write
    output_folder(path)      # the folder, made if missing; UserError unless it is (or can be) a folder we can write
    write_atomic(path, write)  # write(binary file) to a temp file beside `path`, then rename it over `path`
"""
import os
import stat
import tempfile
from pathlib import Path

from utils.errors import UserError

KINDS = {stat.S_ISDIR: "a folder", stat.S_ISLNK: "a symbolic link", stat.S_ISCHR: "a device", stat.S_ISBLK: "a device",
         stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket"}


def kind_of(mode: int) -> str | None:
    """What a file of this st_mode is, in words ("a folder", "a FIFO", ...); None for a regular file."""
    return next((kind for test, kind in KINDS.items() if test(mode)), None)


def check_target(path: str | Path) -> Path:
    """`path`, if a file may be written there by a rename: nothing is there yet, or a regular file is. A folder,
    a symbolic link, a device, a FIFO or a socket is never replaced (a rename would go over any of them)."""
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return path
    except OSError as e:
        raise UserError(f"{path}: cannot write there ({e.strerror})") from None
    kind = kind_of(mode)
    if kind is not None:
        raise UserError(f"{path} is {kind}, not a regular file: refusing to replace it; write to a file")
    return path


def output_folder(path: str | Path) -> Path:
    """`path` as a folder to write files into, made if missing: UserError (one line) if something else is there
    (a file, a link, a device) or it cannot be made or written."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        kind = kind_of(os.lstat(path).st_mode) or "a file"
        raise UserError(f"{path} is {kind}, not a folder: name a folder for the output")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise cannot_write(path, e) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise cannot_write(path, PermissionError(13, "Permission denied"))
    return path


def cannot_write(path: str | Path, error: OSError) -> UserError:
    """The one line for an OSError met while writing `path` (permission, read-only mount, disk full)."""
    reason = error.strerror or type(error).__name__
    return UserError(f"cannot write {path} ({reason}); write it to another folder")


def file_mode() -> int:
    """The mode a new file gets from the umask (0o666 less it), as open() would give; temp files start at 0o600."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: str | Path, write) -> Path:
    """Call write(binary file) on a temp file beside `path`, then rename it to `path`: a reader sees the old
    file or the new one, never half of one, and the temp file never outlives a failure. The file gets the
    umask's mode, as any new file would. UserError (one line) if `path` is not a regular file or cannot be
    written."""
    path = check_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise cannot_write(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            os.fchmod(f.fileno(), file_mode())
        check_target(path)  # still not a folder, link or device
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise cannot_write(path, e) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
