"""Checkpoints without pickle: `save(obj, path)` / `load(path, map_location=None)`.

Imports: numpy, backend, tensor, errors (besides backend, the only module allowed to import numpy
for file I/O). Format: a NumPy .npz (zip) archive holding one .npy member per array and a JSON
manifest (member "__manifest__", a uint8 array of UTF-8 bytes) that describes the nested structure
and refers to the arrays by member name. Loading uses np.load(allow_pickle=False) and json, so a
checkpoint file can never run code. Writes go to a temporary file in the target's directory
(`.<name>.tmp-<pid>-<thread>-<random>`, unique per save, so threads and processes saving to one
path at once never share one), are fsync'ed, then atomically renamed over the target: a crash
leaves the old checkpoint intact, and the next save to that path removes the temporary file a
killed process left.
A symlink is written through (its target is replaced, the link stays), as torch.save does.
"""
from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
import threading
import zipfile
from collections import OrderedDict
from typing import Any, BinaryIO

import numpy as np

from . import backend
from .errors import CheckpointError, TinygradRNNError
from .tensor import Tensor

FORMAT = "tinygrad_rnn.checkpoint"
VERSION = 1
MANIFEST = "__manifest__"


# ====================================================================================== encode
def _encode(obj: Any, arrays: dict, path: str, inside: dict | None = None) -> Any:
    """A JSON-able description of `obj`; arrays are moved into `arrays` under names a0, a1, ...
    `inside` maps id() of the containers being encoded to their paths (to catch a cycle)."""
    def array(a: Any, kind: str) -> dict:
        a = backend.to_numpy(a)
        if a.dtype.hasobject:
            raise TypeError(f"save: {path} is an array of Python objects (dtype {a.dtype}), which "
                            f"cannot be stored without pickle; convert it to a numeric array")
        name = f"a{len(arrays)}"
        arrays[name] = a
        return {"t": kind, "key": name}

    if obj is None or isinstance(obj, (bool, str)):
        return obj  # JSON's own null / true / false / string
    if isinstance(obj, int):
        # Always as a decimal string: JSON readers other than Python's lose digits past 2**53, and
        # the RNG state holds 128-bit integers.
        return {"t": "int", "v": str(obj)}
    if isinstance(obj, float):
        return {"t": "float", "v": repr(obj)}  # repr round-trips exactly, nan and inf included
    if isinstance(obj, Tensor):
        d = array(obj.data, "tensor")
        d["requires_grad"] = bool(obj.requires_grad)
        return d
    if backend.is_array(obj):
        return array(obj, "scalar" if isinstance(obj, np.generic) else "array")
    if isinstance(obj, (dict, list, tuple)):
        inside = {} if inside is None else inside
        if id(obj) in inside:
            raise ValueError(f"save: {path} is {inside[id(obj)]} itself (the object refers to itself), "
                             f"so it cannot be written as a tree; save a copy without the "
                             f"self-reference (e.g. only the state dicts)")
        inside[id(obj)] = path
        try:
            return _encode_container(obj, arrays, path, inside)
        finally:
            del inside[id(obj)]
    raise TypeError(f"save: {path} is a {type(obj).__name__}, which a checkpoint cannot hold; save "
                    f"state dicts (module.state_dict(), optimizer.state_dict()) and plain dicts, "
                    f"lists, tuples, numbers, strings, None, Tensors and arrays")


def _encode_container(obj: Any, arrays: dict, path: str, inside: dict) -> Any:
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not (k is None or isinstance(k, (str, int, float, bool))):
                raise TypeError(f"save: {path} has a key of type {type(k).__name__} ({k!r}); keys must "
                                f"be str, int, float, bool or None")
            items.append([_encode(k, arrays, path), _encode(v, arrays, f"{path}[{k!r}]", inside)])
        return {"t": "odict" if isinstance(obj, OrderedDict) else "dict", "items": items}
    return {"t": "tuple" if isinstance(obj, tuple) else "list",
            "items": [_encode(v, arrays, f"{path}[{i}]", inside) for i, v in enumerate(obj)]}


def _write_npz(f: BinaryIO, arrays: dict) -> None:
    """Write the archive into an open file (a separate function so tests can simulate a crash)."""
    np.savez(f, **arrays)


def save(obj: Any, path: str | os.PathLike) -> None:
    """Save a state dict, or a dict of them (plus numbers, strings, RNG state...), to `path`.

    The file is written exactly at `path` (no suffix is added; ".npz" or ".ckpt" are good names)
    and replaces it atomically: readers see either the old file or the complete new one.
    """
    path = os.fspath(path)
    arrays: dict = {}
    manifest = {"format": FORMAT, "version": VERSION, "root": _encode(obj, arrays, "obj")}
    arrays[MANIFEST] = np.frombuffer(json.dumps(manifest).encode("utf-8"), dtype=np.uint8)
    target = os.path.realpath(path)  # through a symlink: replace its target, keep the link
    directory, name = os.path.split(target)
    _check_writable(path, target, directory)
    _remove_stale_temps(directory, name)
    try:  # created exclusively, mode 0600; the pid in the name lets a later save tell it is stale
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.tmp-{os.getpid()}-{threading.get_ident()}-",
                                   dir=directory)
    except PermissionError:
        given = os.path.dirname(path)
        shown = given if given and os.path.abspath(given) == directory else directory
        raise PermissionError(errno.EACCES, f"save: cannot create a file in directory {shown} "
                              f"(permission denied); save somewhere writable", shown) from None
    try:
        with os.fdopen(fd, "wb") as f:
            _write_npz(f, arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _mode_for(target))  # the temporary file is private (0600) until complete
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def _check_writable(path: str, target: str, directory: str) -> None:
    """Refuse before writing anything, naming what is wrong (not the hidden temporary file)."""
    if not os.path.isdir(directory):
        given = os.path.dirname(path)  # as the user wrote it, unless a link led elsewhere
        shown = given if given and os.path.abspath(given) == directory else directory
        raise FileNotFoundError(errno.ENOENT, f"save: directory {shown} does not exist; create it "
                                f"first (os.makedirs({shown!r}, exist_ok=True))", shown)
    if os.path.isdir(target):
        raise IsADirectoryError(errno.EISDIR, f"save: {path} is a directory; give a file name", path)
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return
    # a replace would succeed in a writable directory, but a read-only file says "keep me"
    # (checked by mode bits too: root passes os.access)
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(target, os.W_OK):
        shown = path if not os.path.islink(path) else f"{path} (a link to {target})"
        raise PermissionError(errno.EACCES, f"save: {shown} is read-only, so it is not replaced; make "
                              f"it writable (chmod u+w) or save under another name", path)


def _remove_stale_temps(directory: str, name: str) -> None:
    """Remove `.<name>.tmp-<pid>[-...]` files whose process is gone (a save killed mid-write).
    Never the own pid's: those belong to saves running in other threads of this process."""
    prefix = f".{name}.tmp-"
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        pid = entry[len(prefix):].split("-", 1)[0] if entry.startswith(prefix) else ""
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue  # not ours, or a save running now (in another thread or process)
        try:
            os.unlink(os.path.join(directory, entry))
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's), or cannot tell: leave its file alone
    return True


def _mode_for(path: str) -> int:
    """Keep the permissions of the file being replaced, else the default for new files."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_dir(directory: str) -> None:
    """Make the rename itself durable (POSIX); not possible on every platform, so best effort."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ====================================================================================== decode
class _Reader:
    def __init__(self, z: Any, path: str, device: str | None) -> None:
        self.z, self.path, self.device, self.names = z, path, device, set(z.files)

    def bad(self, what: str) -> CheckpointError:
        return CheckpointError(f"load: {self.path} is not a valid tinygrad_rnn checkpoint: {what}")

    def array(self, node: dict) -> np.ndarray:
        key = node.get("key")
        if key not in self.names or key == MANIFEST:
            raise self.bad(f"the manifest refers to array {key!r}, which the file does not contain "
                           f"(the file is damaged or was edited)")
        return self.z[key]

    def decode(self, node: Any) -> Any:
        if node is None or isinstance(node, (bool, str)):
            return node
        if not isinstance(node, dict) or "t" not in node:
            raise self.bad(f"unexpected manifest entry {str(node)[:80]!r}")
        t = node["t"]
        if t == "int":
            return int(node["v"])
        if t == "float":
            return float(node["v"])
        if t in ("dict", "odict"):
            d = OrderedDict() if t == "odict" else {}
            for k, v in node["items"]:
                d[self.decode(k)] = self.decode(v)
            return d
        if t in ("list", "tuple"):
            items = [self.decode(v) for v in node["items"]]
            return tuple(items) if t == "tuple" else items
        if t == "tensor":
            a = self.array(node)
            arr = backend.to_device(a, self.device or "cpu")
            return Tensor._make(arr, bool(node.get("requires_grad")) and a.dtype.kind == "f")
        if t == "array":
            a = self.array(node)
            return a if self.device is None else backend.to_device(a, self.device)
        if t == "scalar":
            return self.array(node)[()]
        raise self.bad(f"unknown manifest entry type {t!r} (written by a newer version?)")


def load(path: str | os.PathLike, map_location: Any = None) -> Any:
    """Load what `save` wrote. Tensors come back as Tensors on `map_location` (default "cpu"),
    arrays as NumPy arrays (moved to `map_location` when it is given). Raises CheckpointError
    naming the file and the problem for a truncated, corrupted or foreign file."""
    path = os.fspath(path)
    device = backend.normalize_device(map_location) if map_location is not None else None
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no checkpoint at {path!r}")
    if os.path.isdir(path):
        raise CheckpointError(f"load: {path} is a directory, not a checkpoint file")
    size = os.path.getsize(path)
    if size == 0:
        raise CheckpointError(f"load: {path} is empty (0 bytes): not a checkpoint (an interrupted "
                              f"write by another program?)")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
        if head != b"PK\x03\x04":
            raise CheckpointError(f"load: {path} is not a tinygrad_rnn checkpoint (not an .npz/zip "
                                  f"archive: it starts with {head!r})")
        with np.load(path, allow_pickle=False) as z:
            if MANIFEST not in z.files:
                raise CheckpointError(f"load: {path} is an .npz archive but not a tinygrad_rnn "
                                      f"checkpoint (no {MANIFEST!r} member; it holds {sorted(z.files)[:8]})")
            manifest = json.loads(bytes(z[MANIFEST]).decode("utf-8"))
            reader = _Reader(z, path, device)
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise reader.bad("the manifest does not name the tinygrad_rnn checkpoint format")
            if manifest.get("version") != VERSION:
                raise reader.bad(f"format version {manifest.get('version')!r}; this tinygrad_rnn "
                                 f"reads version {VERSION}")
            return reader.decode(manifest["root"])
    except (TinygradRNNError, MemoryError):  # our own errors (device...) and out-of-memory are
        raise                                   # not the file's fault: pass them through
    except (zipfile.BadZipFile, EOFError) as e:
        why = ("its end, the zip directory, is missing: the file was cut short"
               if "not a zip file" in str(e) else str(e))
        raise CheckpointError(f"load: {path} ({size} bytes) is truncated or corrupted ({why}); restore "
                              f"it from a backup or re-create it") from None
    except Exception as e:  # any decoding failure of a damaged file: zlib, struct, json, KeyError...
        raise CheckpointError(f"load: {path} ({size} bytes) is corrupted or not a tinygrad_rnn "
                              f"checkpoint ({type(e).__name__}: {e})") from None


__all__ = ["save", "load", "CheckpointError"]
