"""Checkpoints: round-trips (module + optimizer + RNG + plain values), the no-pickle format,
atomic writes under simulated crashes, clear errors for damaged files, bit-exact resume."""
import errno
import json
import math
import os
import re
import subprocess
import sys
import threading
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn, optim, serialization
from tinygrad_rnn.serialization import load, save

from conftest import to_np


def small_training_state():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    opt = optim.Adam([{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 0.5}],
                     lr=0.01, amsgrad=True)
    for _ in range(2):
        opt.zero_grad()
        (model(tg.randn(5, 3)) ** 2).mean().backward()
        opt.step()
    return model, opt


# =================================================================================== round trips
def test_roundtrip_module_optimizer_rng_and_values(tmp_path):
    model, opt = small_training_state()
    rng = tg.backend.get_rng_state()
    obj = {"model": model.state_dict(), "optim": opt.state_dict(), "epoch": 3, "rng": rng,
           "note": "ünïcode ✓", "best": None, "done": False, "loss": 0.1 + 0.2,
           "specials": [float("nan"), float("inf"), -0.0], "big": -(2 ** 100) + 1, "pair": (1, "a"),
           "ids": np.arange(5, dtype=np.int32), "mask": np.array([True, False]),
           "half": np.ones((2, 2), np.float16), "zero_d": np.array(2.5), "empty": np.zeros((0, 3)),
           "scalar": np.int64(7), "float_keys": {1.5: "x", None: "n", True: "t"}}
    path = tmp_path / "ckpt.npz"
    save(obj, path)
    back = load(path)
    assert list(back) == list(obj)
    assert isinstance(back["model"], OrderedDict) and list(back["model"]) == list(obj["model"])
    for k, v in obj["model"].items():
        assert isinstance(back["model"][k], tg.Tensor) and back["model"][k].dtype == np.float32
        np.testing.assert_array_equal(back["model"][k].numpy(), v.numpy())
    so, sb = obj["optim"], back["optim"]
    assert sb["param_groups"] == so["param_groups"]  # hyperparameters, tuples (betas) included
    assert isinstance(sb["param_groups"][0]["betas"], tuple)
    assert list(sb["state"]) == [0, 1, 2, 3]  # integer keys stay integers
    for i, s in so["state"].items():
        assert sb["state"][i]["step"] == s["step"] == 2
        for k in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            np.testing.assert_array_equal(sb["state"][i][k].numpy(), s[k].numpy())
    assert back["rng"] == rng  # 128-bit integers of the bit generator, exactly
    assert back["epoch"] == 3 and back["note"] == obj["note"] and back["best"] is None
    assert back["done"] is False and back["loss"] == 0.1 + 0.2
    assert math.isnan(back["specials"][0]) and back["specials"][1] == math.inf
    assert math.copysign(1, back["specials"][2]) == -1
    assert back["big"] == -(2 ** 100) + 1 and back["pair"] == (1, "a")
    for k in ("ids", "mask", "half", "zero_d", "empty"):
        assert type(back[k]) is np.ndarray and back[k].dtype == obj[k].dtype
        np.testing.assert_array_equal(back[k], obj[k])
    assert back["scalar"] == 7 and back["scalar"].dtype == np.int64
    assert back["float_keys"] == {1.5: "x", None: "n", True: "t"}


def test_loaded_state_restores_model_and_optimizer(tmp_path):
    model, opt = small_training_state()
    save({"model": model.state_dict(), "optim": opt.state_dict()}, tmp_path / "c.ckpt")
    ck = load(tmp_path / "c.ckpt")
    tg.manual_seed(5)
    m2 = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    o2 = optim.Adam([{"params": m2[0].parameters()}, {"params": m2[2].parameters()}], lr=0.01, amsgrad=True)
    m2.load_state_dict(ck["model"])
    o2.load_state_dict(ck["optim"])
    assert o2.param_groups[1]["lr"] == 0.5
    for p, q in zip(model.parameters(), m2.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
        np.testing.assert_array_equal(opt.state[p]["exp_avg"], o2.state[q]["exp_avg"])


def test_tensor_flags_and_map_location(tmp_path, device):
    t = tg.randn(2, 3, requires_grad=True)
    save({"t": t, "i": tg.Tensor([1, 2]), "a": np.ones(2)}, tmp_path / "t.npz")
    back = load(tmp_path / "t.npz", map_location=device)
    assert isinstance(back["t"], tg.Tensor) and back["t"].requires_grad and back["t"].is_leaf
    assert back["t"].device.startswith(device) and back["i"].dtype == np.int64
    np.testing.assert_array_equal(to_np(back["t"]), t.numpy())
    assert back["a"].__class__.__module__.split(".")[0] == ("numpy" if device == "cpu" else "cupy")
    assert type(load(tmp_path / "t.npz")["a"]) is np.ndarray


def test_save_from_device(tmp_path, device):
    model = nn.Linear(2, 3).to(device)
    save(model.state_dict(), tmp_path / "m.npz")
    back = load(tmp_path / "m.npz")
    assert back["weight"].device == "cpu"
    np.testing.assert_array_equal(back["weight"].numpy(), to_np(model.weight))


def test_rng_state_roundtrip_reproduces_stream(tmp_path):
    tg.manual_seed(42)
    tg.randn(10)
    save({"rng": tg.backend.get_rng_state()}, tmp_path / "r.npz")
    expected = tg.randn(5).numpy()
    tg.manual_seed(7)
    tg.backend.set_rng_state(load(tmp_path / "r.npz")["rng"])
    np.testing.assert_array_equal(tg.randn(5).numpy(), expected)


# ======================================================================================= format
def test_format_is_plain_npz_with_json_manifest(tmp_path):
    model, opt = small_training_state()
    path = tmp_path / "f.npz"
    save({"model": model.state_dict(), "optim": opt.state_dict(), "rng": tg.backend.get_rng_state()}, path)
    with zipfile.ZipFile(path) as z:
        assert all(n.endswith(".npy") for n in z.namelist())
    with np.load(path, allow_pickle=False) as z:  # every member loads without pickle
        arrays = {k: z[k] for k in z.files}
    assert all(not a.dtype.hasobject for a in arrays.values())
    manifest = json.loads(bytes(arrays["__manifest__"]).decode())
    assert manifest["format"] == "tinygrad_rnn.checkpoint" and manifest["version"] == 1
    text = json.dumps(manifest)
    # integers are decimal strings: no JSON number can exceed 2**53 (other readers would round)
    assert '"t": "int"' in text and str(tg.backend.get_rng_state()["cpu"]["state"]["state"]) in text

    def numbers(node):  # JSON numbers anywhere in the tree (bools excluded)
        if isinstance(node, dict):
            return [n for v in node.values() for n in numbers(v)]
        if isinstance(node, list):
            return [n for v in node for n in numbers(v)]
        return [node] if isinstance(node, (int, float)) and not isinstance(node, bool) else []

    assert numbers(manifest["root"]) == []


def test_file_is_written_exactly_at_path_and_keeps_permissions(tmp_path):
    path = tmp_path / "model.ckpt"
    save({"a": 1}, path)
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt"]
    os.chmod(path, 0o640)
    save({"a": 2}, str(path))
    assert os.stat(path).st_mode & 0o777 == 0o640 and load(path) == {"a": 2}


def test_unsupported_values_are_refused_by_path(tmp_path):
    path = tmp_path / "x.npz"
    save({"ok": 1}, path)
    with pytest.raises(TypeError, match=r"obj\['optim'\]\['fn'\] is a function"):
        save({"optim": {"fn": lambda: 0}}, path)
    with pytest.raises(TypeError, match="Python objects"):
        save({"o": np.array([{}], dtype=object)}, path)
    with pytest.raises(TypeError, match="key of type tuple"):
        save({(1, 2): 3}, path)
    assert load(path) == {"ok": 1} and os.listdir(tmp_path) == ["x.npz"]


# ============================================================================ atomic writes
def test_crash_midway_keeps_old_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    model, _ = small_training_state()
    save(model.state_dict(), path)
    old_bytes = path.read_bytes()

    def crashing_write(f, arrays):
        f.write(b"PK\x03\x04" + b"\0" * 100)  # half an archive reaches the disk...
        raise RuntimeError("simulated crash while writing")  # ...then the writer dies

    monkeypatch.setattr(serialization, "_write_npz", crashing_write)
    with pytest.raises(RuntimeError, match="simulated crash"):
        save({"model": nn.Linear(3, 4).state_dict()}, path)
    assert os.listdir(tmp_path) == ["ckpt.npz"]  # the temporary file was removed
    assert path.read_bytes() == old_bytes
    back = load(path)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(back[k].numpy(), v.numpy())


def test_crash_in_replace_keeps_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    save({"v": 1}, path)

    def no_rename(src, dst):
        raise KeyboardInterrupt  # interrupted just before the rename

    monkeypatch.setattr(serialization.os, "replace", no_rename)
    with pytest.raises(KeyboardInterrupt):
        save({"v": 2}, path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ckpt.npz"] and load(path) == {"v": 1}


def test_killed_process_leaves_old_checkpoint_loadable(tmp_path):
    """A hard kill (no cleanup possible) mid-write: the target is untouched; only a stale hidden
    temporary file can remain, which load never reads."""
    path = tmp_path / "ckpt.npz"
    save({"v": np.arange(3)}, path)
    script = (
        "import os, numpy as np\n"
        "from tinygrad_rnn import serialization as s\n"
        "def die(f, arrays):\n"
        "    f.write(b'PK\\x03\\x04partial'); f.flush(); os._exit(9)\n"
        "s._write_npz = die\n"
        f"s.save({{'v': np.arange(10**6)}}, {str(path)!r})\n")
    r = subprocess.run([sys.executable, "-c", script], cwd=os.path.dirname(os.path.dirname(__file__)),
                       capture_output=True, timeout=60)
    assert r.returncode == 9, r.stderr.decode()
    np.testing.assert_array_equal(load(path)["v"], np.arange(3))
    leftovers = [n for n in os.listdir(tmp_path) if n != "ckpt.npz"]
    assert len(leftovers) == 1
    assert re.fullmatch(r"\.ckpt\.npz\.tmp-\d+-\d+-\w+", leftovers[0]), leftovers
    save({"v": np.arange(4)}, path)  # the next save to that path removes the killed save's file
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    np.testing.assert_array_equal(load(path)["v"], np.arange(4))


def test_stale_temp_of_a_live_process_is_left_alone(tmp_path):
    """Only files of dead processes are stale: a concurrent save by a live process keeps its file."""
    path = tmp_path / "ckpt.npz"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is gone: its files are stale
    try:
        kept = [f".ckpt.npz.tmp-{live.pid}", f".ckpt.npz.tmp-{live.pid}-7-abc",
                f".ckpt.npz.tmp-{os.getpid()}-7-abc",  # another thread of this process, mid-save
                ".ckpt.npz.tmp-notapid"]
        for n in kept + [f".ckpt.npz.tmp-{dead.pid}", f".ckpt.npz.tmp-{dead.pid}-7-abc"]:
            (tmp_path / n).write_bytes(b"in progress")
        save({"v": 1}, path)
        assert sorted(os.listdir(tmp_path)) == sorted(kept + ["ckpt.npz"])
    finally:
        live.kill()
        live.wait()


def test_two_threads_saving_to_one_path(tmp_path):
    """Each save has its own temporary file, and no save removes another thread's file."""
    path = tmp_path / "ckpt.npz"
    errors: list = []

    def saver(k: int) -> None:
        try:
            for i in range(30):
                save({"k": k, "i": i, "w": np.full(2000, k, np.float32)}, path)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=saver, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    back = load(path)
    assert back["i"] == 29 and back["k"] in (0, 1)
    np.testing.assert_array_equal(back["w"], np.full(2000, back["k"], np.float32))
    assert os.listdir(tmp_path) == ["ckpt.npz"]


# ============================================================================ paths and links
def test_save_through_a_symlink_updates_the_target(tmp_path):
    real = tmp_path / "runs" / "real.ckpt"
    real.parent.mkdir()
    save({"v": 1}, real)
    link = tmp_path / "latest.ckpt"
    link.symlink_to(real)
    save({"v": 2}, link)
    assert link.is_symlink() and os.readlink(link) == str(real)  # the link stays a link
    assert load(real) == {"v": 2} and load(link) == {"v": 2}  # and its target was updated
    assert sorted(os.listdir(tmp_path)) == ["latest.ckpt", "runs"]
    assert os.listdir(real.parent) == ["real.ckpt"]


def test_save_through_a_dangling_symlink_creates_the_target(tmp_path):
    link = tmp_path / "latest.ckpt"
    link.symlink_to(tmp_path / "new.ckpt")
    save({"v": 3}, link)
    assert link.is_symlink() and load(tmp_path / "new.ckpt") == {"v": 3}


def test_read_only_checkpoint_is_not_replaced(tmp_path):
    path = tmp_path / "final.ckpt"
    save({"v": 1}, path)
    os.chmod(path, 0o444)
    try:
        with pytest.raises(PermissionError, match=r"final\.ckpt is read-only") as e:
            save({"v": 2}, path)
        assert e.value.filename == str(path)
        assert load(path) == {"v": 1} and os.listdir(tmp_path) == ["final.ckpt"]
        link = tmp_path / "link.ckpt"
        link.symlink_to(path)
        with pytest.raises(PermissionError, match=r"link\.ckpt \(a link to .*final\.ckpt\) is read-only"):
            save({"v": 2}, link)
    finally:
        os.chmod(path, 0o644)


def test_missing_directory_is_named(tmp_path):
    missing = tmp_path / "no" / "such"
    with pytest.raises(FileNotFoundError, match=r"directory .*no/such does not exist") as e:
        save({"v": 1}, missing / "x.ckpt")
    assert e.value.filename == str(missing) and ".tmp" not in str(e.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root may write into a read-only directory")
def test_read_only_directory_is_named(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    os.chmod(d, 0o555)
    try:
        with pytest.raises(PermissionError, match=r"directory .*ro \(permission denied\)") as e:
            save({"v": 1}, d / "x.ckpt")
        assert e.value.filename == str(d) and ".tmp" not in str(e.value)
    finally:
        os.chmod(d, 0o755)


def test_read_only_directory_error_is_rewritten(tmp_path, monkeypatch):
    """The same check on any user (root may write anywhere): a refused temporary file is reported
    as the directory's problem."""
    real_open = os.open

    def refuse(p, *a, **k):
        if ".tmp-" in str(p):
            raise PermissionError(errno.EACCES, "Permission denied", p)
        return real_open(p, *a, **k)

    monkeypatch.setattr(serialization.os, "open", refuse)
    with pytest.raises(PermissionError, match=r"cannot create a file in directory") as e:
        save({"v": 1}, tmp_path / "x.ckpt")
    assert e.value.filename == str(tmp_path) and ".tmp" not in str(e.value)


def test_directory_as_path_is_named(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        save({"v": 1}, tmp_path)


def test_self_reference_gives_a_clear_error(tmp_path):
    d = {"a": 1}
    d["me"] = d
    with pytest.raises(ValueError, match=r"obj\['me'\] is obj itself") as e:
        save(d, tmp_path / "x.ckpt")
    assert not isinstance(e.value, RecursionError)
    lst = [1]
    lst.append({"inner": lst})
    with pytest.raises(ValueError, match=r"obj\[1\]\['inner'\] is obj itself"):
        save(lst, tmp_path / "x.ckpt")
    shared = [1, 2]  # the same object twice is not a cycle: saved as two copies
    save({"a": shared, "b": shared}, tmp_path / "x.ckpt")
    assert load(tmp_path / "x.ckpt") == {"a": [1, 2], "b": [1, 2]}
    assert os.listdir(tmp_path) == ["x.ckpt"]


# ========================================================================== damaged files
@pytest.fixture
def good_file(tmp_path):
    model, opt = small_training_state()
    path = tmp_path / "good.npz"
    save({"model": model.state_dict(), "optim": opt.state_dict()}, path)
    return path


@pytest.mark.parametrize("frac", [0.0001, 0.3, 0.7, 0.99])
def test_truncated_file_gives_checkpoint_error(good_file, tmp_path, frac):
    data = good_file.read_bytes()
    bad = tmp_path / "trunc.npz"
    bad.write_bytes(data[:max(4, int(len(data) * frac))])
    with pytest.raises(tg.CheckpointError, match=r"trunc\.npz.*(truncated|corrupted)"):
        load(bad)


def test_flipped_bytes_give_checkpoint_error(good_file, tmp_path):
    data = bytearray(good_file.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 16):
        data[i] ^= 0xFF
    bad = tmp_path / "flip.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(tg.CheckpointError, match="flip.npz"):
        load(bad)


def test_garbage_empty_and_foreign_files(tmp_path):
    cases = {"garbage.bin": os.urandom(500), "empty.npz": b"", "text.npz": b"hello world\n"}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(tg.CheckpointError, match=name.replace(".", r"\.")):
            load(tmp_path / name)
    np.save(tmp_path / "single.npy", np.ones(3))
    with pytest.raises(tg.CheckpointError, match="not a tinygrad_rnn checkpoint"):
        load(tmp_path / "single.npy")
    np.savez(tmp_path / "plain.npz", w=np.ones(3))
    with pytest.raises(tg.CheckpointError, match=r"plain\.npz is an .npz archive but not.*\['w'\]"):
        load(tmp_path / "plain.npz")
    with pytest.raises(tg.CheckpointError, match="directory"):
        load(tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load(tmp_path / "missing.npz")


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling this would create the marker file
        return (open, (self.marker, "w"))


def test_pickled_payload_is_never_executed(tmp_path):
    marker = str(tmp_path / "PWNED")
    manifest = {"format": "tinygrad_rnn.checkpoint", "version": 1, "root": {"t": "array", "key": "a0"}}
    path = tmp_path / "evil.npz"
    np.savez(path, a0=np.array([_Evil(marker)], dtype=object),
             __manifest__=np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8))
    with pytest.raises(tg.CheckpointError, match="evil.npz"):
        load(path)
    assert not os.path.exists(marker)


def test_manifest_problems(tmp_path):
    def write(manifest, **arrays):
        path = tmp_path / "m.npz"
        np.savez(path, __manifest__=np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8), **arrays)
        return path

    base = {"format": "tinygrad_rnn.checkpoint", "version": 1}
    with pytest.raises(tg.CheckpointError, match="array 'a7'.*does not contain"):
        load(write({**base, "root": {"t": "tensor", "key": "a7"}}))
    with pytest.raises(tg.CheckpointError, match="version 99"):
        load(write({**base, "version": 99, "root": None}))
    with pytest.raises(tg.CheckpointError, match="unknown manifest entry type 'pickle'"):
        load(write({**base, "root": {"t": "pickle"}}))
    with pytest.raises(tg.CheckpointError, match="does not name"):
        load(write({"format": "other", "root": None}))


# ===================================================================== resume bit for bit
def _build():
    model = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.3), nn.Tanh(), nn.Linear(16, 1))
    opt = optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-3)
    return model, opt


def _steps(model, opt, n):
    for _ in range(n):
        x = tg.randn(8, 4)              # data and dropout masks both come from the library RNG
        y = x.sum(1, keepdim=True).tanh()
        opt.zero_grad()
        nn.MSELoss()(model(x), y).backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()


def test_resume_from_checkpoint_is_bit_exact(tmp_path):
    tg.manual_seed(0)
    model_a, opt_a = _build()
    _steps(model_a, opt_a, 8)
    rng_a = tg.backend.get_rng_state()

    tg.manual_seed(0)
    model_b, opt_b = _build()
    _steps(model_b, opt_b, 3)
    save({"model": model_b.state_dict(), "optim": opt_b.state_dict(), "step": 3,
          "rng": tg.backend.get_rng_state()}, tmp_path / "run.ckpt")
    del model_b, opt_b

    tg.manual_seed(1234)  # a "new process": other seed, other init, RNG used differently
    tg.randn(17)
    model_c, opt_c = _build()
    ck = load(tmp_path / "run.ckpt")
    model_c.load_state_dict(ck["model"])
    opt_c.load_state_dict(ck["optim"])
    tg.backend.set_rng_state(ck["rng"])
    _steps(model_c, opt_c, 8 - ck["step"])

    for (n, p), q in zip(model_a.named_parameters(), model_c.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=n)
    sa, sc = opt_a.state_dict(), opt_c.state_dict()
    assert sa["param_groups"] == sc["param_groups"]
    for i in sa["state"]:
        assert sa["state"][i]["step"] == sc["state"][i]["step"] == 8
        for k in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(sa["state"][i][k].numpy(), sc["state"][i][k].numpy())
    assert tg.backend.get_rng_state() == rng_a
