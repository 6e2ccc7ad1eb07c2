"""Atomic writes: every file or folder snip_tf writes appears whole or not at all.

Data go to a temporary name beside the target and are renamed into place (``os.replace``), so a
killed process or a full disk never leaves a truncated file where a good one was.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _usual_mode(path: str, folder: bool = False) -> None:
    """Give a temporary the mode an ordinary open()/mkdir would have (mkstemp/mkdtemp make it
    private to the owner, and the rename would keep that)."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def _temporary_beside(path: str, suffix: str = "") -> str:
    folder = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=suffix + ".tmp",
                               dir=folder)
    os.close(fd)
    return tmp


def write_bytes(path: str, data: bytes) -> str:
    """Write ``data`` to ``path`` atomically."""
    tmp = _temporary_beside(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _usual_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return path


def finite_json(value):
    """``value`` with every NaN/Inf float replaced by None: strict JSON has no bare NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def write_json(path: str, value, *, default=None, indent: int = 2) -> str:
    """Write ``value`` as strict JSON (NaN/Inf as null) to ``path`` atomically."""
    text = json.dumps(finite_json(json.loads(json.dumps(value, default=default))), indent=indent,
                      allow_nan=False)
    return write_bytes(path, text.encode("utf-8"))


MAX_JSON_BYTES = 64 * 2 ** 20


def read_json(path: str, *, expect: type = object, max_bytes: int = MAX_JSON_BYTES):
    """The JSON value in ``path``, checked before memory is spent on it: a file over
    ``max_bytes``, one that is not JSON, or a value that is not an ``expect`` raises a ValueError
    that names the file (a file this library wrote is never larger than a few MiB)."""
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)  # never more than the bound, however large the file
    if len(data) > max_bytes:
        raise ValueError(f"{path!r} is {os.path.getsize(path)} bytes; a JSON file snip_tf reads "
                         f"is at most {max_bytes} bytes. Is it the file you meant?")
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path!r} is not a JSON file ({e}); delete it or restore it.") from e
    if not isinstance(value, expect):
        raise ValueError(f"{path!r} holds a JSON {type(value).__name__}; expected a "
                         f"{expect.__name__}.")
    return value


@contextlib.contextmanager
def directory(path: str, *, overwrite: bool = False):
    """Yields a temporary folder beside ``path``; on success it replaces ``path``.

    An existing ``path`` is kept until the new folder is complete: it is moved aside, the new one
    is renamed into place, then the old one is deleted. On failure the temporary folder is removed
    and ``path`` is left as it was.
    """
    path = os.path.abspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path!r} already exists; pass overwrite=True or choose another path.")
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)
    try:
        yield tmp
        _usual_mode(tmp, folder=True)
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".old", dir=parent)
            os.rmdir(old)
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)         # put the earlier one back
                raise
            shutil.rmtree(old, ignore_errors=True) if os.path.isdir(old) else os.remove(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
