"""Exception types and message helpers. Imports nothing from the package.

Every error a user can cause names the operation, the shapes/dtypes/devices involved and a fix.
"""
from __future__ import annotations


class TinygradRNNError(Exception):
    """Base class of every error raised on purpose by tinygrad_rnn."""


class ShapeError(TinygradRNNError, ValueError):
    """Shapes that do not fit an operation (matmul, broadcasting, cat, a layer's input...)."""


class DeviceError(TinygradRNNError, RuntimeError):
    """Tensors on different devices, or a device that is not available."""


class DTypeError(TinygradRNNError, TypeError):
    """A dtype that an operation cannot take (e.g. integer data asked to require grad)."""


class GraphFreedError(TinygradRNNError, RuntimeError):
    """A second backward through a graph whose saved arrays were released."""


class GradError(TinygradRNNError, RuntimeError):
    """Misuse of backward/grad: non-scalar root without grad, no path to an input..."""


class InplaceError(GradError):
    """A tensor that a backward needs was modified in place after the forward saved it."""


class AnomalyError(TinygradRNNError, FloatingPointError):
    """NaN/Inf found by detect_anomaly()."""


class CheckpointError(TinygradRNNError, ValueError):
    """A checkpoint file that is truncated, corrupted or not a tinygrad_rnn checkpoint."""


def fmt_shape(shape: tuple) -> str:
    """(3, 4) -> '(3, 4)', () -> '()' (a scalar)."""
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def dtype_problem(dtype: object, what: str) -> str | None:
    """Why an array of this (NumPy/CuPy) dtype cannot be tensor data, or None if it can: tensors
    hold bools, integers and floats only."""
    kind = getattr(dtype, "kind", None)
    if kind in ("b", "i", "u", "f"):
        return None
    if kind == "c":
        return (f"{what}: complex data (dtype {dtype}) is not supported; tensors hold bools, "
                f"integers and floats: keep the real part (a.real) or the magnitude (abs(a))")
    if kind == "O":
        return (f"{what}: an array of Python objects (dtype object) is not numeric data; it usually "
                f"comes from mixed or ragged values; convert it with a.astype('float32') or fix the rows")
    return (f"{what}: cannot make a numeric tensor from dtype {dtype}; the data must hold numbers or "
            f"bools")
