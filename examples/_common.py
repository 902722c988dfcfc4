"""Helpers shared by the example scripts (not part of the library; examples import it as `_common`).

- `make_parser(name, doc)`: argparse with the flags every example takes: --device, --seed, --out,
  --smoke.
- `setup(args, name)`: checks the device (a clear message instead of a traceback when CUDA is
  missing), seeds the library's generators, creates the output folder and returns it.
- `progress(iterable, total=, desc=)`: a progress bar, tqdm's when tqdm is installed, else a small
  built-in one with the same methods the examples use (update, set_postfix, write, close).
- `pyplot()`: matplotlib.pyplot on the file-only Agg backend, or None with an install hint.
- `wrote(path)`: prints the path of a file an example wrote.
- `Run(args, name)`: one run of an example, the conventions in one place: `setup` (the header
  line), `run.wrote(path)` for every file written, and `run.finish(metrics)` at the end, which
  writes results.json (the metrics, the wall time and the machine: CPU, cores, load average at
  start and end, BLAS threads, versions, device, seed, date), announces it and prints "done in".
  The runs quoted in the docs are recorded this way (examples/recorded_runs.py).

Uses only the public API of tinygrad_rnn plus the standard library (tqdm and matplotlib are
optional extras: `pip install "tinygrad-rnn[progress,plot]"`).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

# The examples multiply small matrices, one time step at a time. Multi-threaded BLAS gains nothing
# there, and on a busy machine (other processes on the same cores) its spinning worker threads slow
# every step down 2-10x (measured on 2 cores). So BLAS runs on one thread unless the user chose
# otherwise, e.g. OPENBLAS_NUM_THREADS=4 python examples/char_rnn.py. This only takes effect when
# this module is imported before NumPy, which is why the examples import it first.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import tinygrad_rnn as tg  # noqa: E402


def make_parser(name: str, doc: str | None) -> argparse.ArgumentParser:
    """An ArgumentParser with --device, --seed, --out (default out/<name>) and --smoke."""
    p = argparse.ArgumentParser(prog=f"{name}.py", description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu",
                   help="cpu (NumPy) or cuda / cuda:N (CuPy); default: cpu")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--out", type=Path, default=Path("out") / name,
                   help=f"folder for pictures and checkpoints (default: out/{name})")
    p.add_argument("--smoke", action="store_true",
                   help="a tiny run that finishes in seconds (used by the tests)")
    return p


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """parser.parse_args(argv), keeping the arguments as given (results.json records them)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv
    return args


def setup(args: argparse.Namespace, name: str) -> Path:
    """Validate --device, seed every generator, create --out; returns the output folder."""
    try:
        args.device = tg.backend.normalize_device(args.device)
    except tg.DeviceError as e:
        raise SystemExit(f"{name}: {e}") from None
    tg.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{name}: device {args.device}, seed {args.seed}, output folder {out}"
          + (" (smoke run)" if args.smoke else ""))
    return out


def wrote(path: str | os.PathLike) -> None:
    print(f"wrote {path}")


# ================================================================================ recorded runs
def _load() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the OS has none, e.g. Windows)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas_threads() -> Any:
    """Threads of each BLAS NumPy uses (threadpoolctl's report when installed, else the setting)."""
    try:
        from threadpoolctl import threadpool_info  # noqa: PLC0415 - optional dependency
    except ImportError:
        return {v: os.environ.get(v) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    return {i.get("internal_api", "?"): i.get("num_threads") for i in threadpool_info()
            if i.get("user_api") == "blas"}


def _gpu_name(device: str) -> str | None:
    """The GPU's name for a cuda device (None on the CPU or when CuPy cannot say)."""
    if not device.startswith("cuda"):
        return None
    try:
        cp = tg.backend.xp_for(device)
        props = cp.cuda.runtime.getDeviceProperties(int(device.partition(":")[2] or 0))
        name = props["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # noqa: BLE001 - a fact for the record, never a reason to fail the run
        return None


def machine_facts(device: str = "cpu") -> dict[str, Any]:
    """What a run's time depends on: CPU, cores, BLAS threads, GPU, versions."""
    import numpy  # noqa: PLC0415 - imported after this module set the BLAS thread count
    try:
        cores_usable = len(os.sched_getaffinity(0))
    except AttributeError:
        cores_usable = os.cpu_count()
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "cores_usable": cores_usable,
            "blas_threads": _blas_threads(), "gpu": _gpu_name(device),
            "python": platform.python_version(),
            "numpy": numpy.__version__, "tinygrad_rnn": getattr(tg, "__version__", None),
            "os": platform.platform()}


def _jsonable(v: Any) -> Any:
    if isinstance(v, os.PathLike):
        return str(v)
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item") and callable(v.item):  # NumPy scalars
        return v.item()
    return v


class Run:
    """One run of an example: the conventions every example follows, in one place.

    `Run(args, name)` validates the device, seeds, creates the output folder and prints the header
    (`setup`); `wrote(path)` announces a file as it is written; `finish(metrics)` writes
    `results.json` into the output folder (metrics, wall time, machine, load average at start and
    end, device, seed, date, command line), announces it and prints "done in"."""

    def __init__(self, args: argparse.Namespace, name: str) -> None:
        self.name, self.args = name, args
        self.load_start = _load()
        self.started = dt.datetime.now(dt.timezone.utc)
        self.t0 = time.perf_counter()
        self.out = setup(args, name)
        self.files: list[Path] = []

    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    def wrote(self, path: str | os.PathLike) -> Path:
        self.files.append(Path(path))
        wrote(path)
        return Path(path)

    def finish(self, metrics: dict[str, Any], **timings: float) -> dict[str, Any]:
        """Write results.json, announce it, print "done in"; returns the record."""
        elapsed = self.seconds()
        path = self.out / "results.json"
        record = {
            "example": self.name,
            "command": " ".join(["python", f"examples/{self.name}.py", *self.args.argv]),
            "smoke": bool(self.args.smoke), "device": self.args.device, "seed": self.args.seed,
            "date": self.started.strftime("%Y-%m-%d %H:%M UTC"),
            "seconds": round(elapsed, 2),
            "timings": {k: round(v, 2) for k, v in timings.items()},
            "metrics": _jsonable(metrics),
            "files": [str(p) for p in [*self.files, path]],
            "machine": {**machine_facts(self.args.device), "load_start": self.load_start,
                        "load_end": _load()},
            "args": _jsonable({k: v for k, v in vars(self.args).items() if k != "argv"}),
        }
        path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        self.wrote(path)
        print(f"done in {fmt_seconds(elapsed)}")
        return record


def pyplot() -> Any:
    """matplotlib.pyplot with the Agg backend (files only, no window), or None if not installed."""
    try:
        import matplotlib  # noqa: PLC0415 - optional dependency
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        print('matplotlib is not installed, so no plot is drawn: pip install "tinygrad-rnn[plot]"')
        return None
    return plt


def fmt_seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{int(s // 60)} min {s % 60:.0f} s"


# ================================================================================ progress bar
class _Bar:
    """The subset of tqdm the examples use, for when tqdm is not installed. Redraws one line on a
    terminal (at most 10 times a second); elsewhere (a log file, a test) it prints a line at every
    10% so the output stays short."""

    def __init__(self, iterable: Iterable | None, total: int | None, desc: str) -> None:
        self.iterable, self.desc, self.n, self.postfix = iterable, desc, 0, ""
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total
        self.t0 = self.last = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.next_decile = 1

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update()
        self.close()

    def __enter__(self) -> "_Bar":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _line(self) -> str:
        el = time.perf_counter() - self.t0
        if self.total:
            frac = min(self.n / self.total, 1.0)
            bar = "#" * int(frac * 20)
            eta = el / frac - el if frac > 0 else 0.0
            head = f"{self.desc}: {frac:4.0%}|{bar:<20}| {self.n}/{self.total} [{el:.0f}s<{eta:.0f}s]"
        else:
            head = f"{self.desc}: {self.n} [{el:.0f}s]"
        return head + (f" {self.postfix}" if self.postfix else "")

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if self.tty:
            if now - self.last >= 0.1:
                self.last = now
                sys.stderr.write("\r" + self._line())
                sys.stderr.flush()
        elif self.total and self.n * 10 >= self.next_decile * self.total:
            self.next_decile = self.n * 10 // self.total + 1
            print(self._line(), file=sys.stderr)

    def set_postfix(self, refresh: bool = False, **kw: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in kw.items())

    def write(self, s: str) -> None:
        if self.tty:
            sys.stderr.write("\r" + " " * len(self._line()) + "\r")
        print(s)

    def close(self) -> None:
        if self.tty and self.n:
            sys.stderr.write("\r" + self._line() + "\n")
            sys.stderr.flush()
        self.tty = False  # closing twice prints nothing more


def progress(iterable: Iterable | None = None, total: int | None = None, desc: str = "") -> Any:
    """tqdm(iterable, total, desc) if tqdm is installed, else the small fallback bar above.

    `set_postfix` never forces a redraw (tqdm's default does, which would print a line for every
    training step); off a terminal the bar is redrawn at most every 10 seconds."""
    try:
        from tqdm import tqdm  # noqa: PLC0415 - optional dependency
    except ImportError:
        return _Bar(iterable, total, desc)

    class _Tqdm(tqdm):  # type: ignore[misc, valid-type]
        def set_postfix(self, ordered_dict: Any = None, refresh: bool = False, **kw: Any) -> None:
            super().set_postfix(ordered_dict, refresh=refresh, **kw)

    return _Tqdm(iterable, total=total, desc=desc, dynamic_ncols=True, file=sys.stderr,
                 mininterval=0.2 if sys.stderr.isatty() else 10.0)
