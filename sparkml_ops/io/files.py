"""Project files on local disk: created whole and new, never overwriting what a person wrote."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sparkml_ops.errors import PathExistsError, PermissionDeniedError


def write_new_files(files: Mapping[Path, str]) -> list[Path]:
    """Create every file of ``files`` (path -> text, UTF-8), or none of them.

    Each file is created exclusively (``O_EXCL``): a file that appears meanwhile is not overwritten
    either. On any failure the files created by this call are removed again.

    Returns:
        The paths written, in the order given.

    Raises:
        PathExistsError: one or more of the files exist; the message lists all of them, nothing is written.
        PermissionDeniedError: a directory cannot be created or written.
    """
    existing = [str(p) for p in files if p.exists()]
    if existing:
        raise PathExistsError(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
                              "nothing was written.", hint="Choose another name, or remove those files first.")
    written: list[Path] = []
    try:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                handle = path.open("x", encoding="utf-8")
            except FileExistsError as exc:
                raise PathExistsError(f"{path} appeared while new files were written; nothing was kept.") from exc
            with handle:
                written.append(path)
                handle.write(text)
    except PermissionError as exc:
        _remove(written)
        raise PermissionDeniedError(f"cannot write {exc.filename}: {exc.strerror}; nothing was kept.") from exc
    except BaseException:
        _remove(written)
        raise
    return written


def _remove(paths: list[Path]) -> None:
    for path in reversed(paths):
        path.unlink(missing_ok=True)
