"""Writing files so that a crash never leaves half of one, with the permissions their content calls for."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

PRIVATE = 0o600  # may hold credentialed text or model outputs that echo it: the owner only
SHARED = 0o644  # reports meant to be uploaded as CI artefacts


def atomic_write(path: Path, payload: bytes, mode: int) -> Path:
    """Write `payload` to a temporary sibling and rename it over `path`: readers see the old file or the new one.
    The temporary file is created with mode 0600 (mkstemp), so private content is never briefly world-readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def build_folder(out_dir: Path, write: Callable[[Path], object]) -> Path:
    """Run `write` into a temporary sibling folder and rename it into place: a half-built folder is never used,
    and concurrent builders (xdist workers) race harmlessly, since their outputs are identical."""
    if out_dir.is_dir():
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    tmp.chmod(0o755)
    try:
        write(tmp)
        try:
            os.replace(tmp, out_dir)
        except OSError:
            if not out_dir.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
