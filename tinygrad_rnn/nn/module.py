"""`Module` and `Parameter`: PyTorch's module API (registration by attribute, named_parameters,
state_dict, train/eval, to), small enough to read in one sitting.

Imports: the public core. `__call__` runs `forward` inside `scope("module", name)`, so every op a
module creates is tagged with its module path (viz clusters by it, detect_anomaly reports it).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterator

from .. import autograd, backend
from ..errors import DTypeError, ShapeError, fmt_shape
from ..tensor import _DTYPE_NAMES, Tensor, as_dtype


class Parameter(Tensor):
    """A leaf tensor that a Module registers as trainable (requires_grad=True by default)."""

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            data = backend.np.zeros((0,), dtype="float32")
        src = data.detach().data if isinstance(data, Tensor) else data
        if not backend.is_array(src):
            src = backend.np.asarray(src, dtype="float32")
        self.data = src  # shares the array, as torch.nn.Parameter does
        if isinstance(data, Tensor):
            self._version = data._version_box()  # and so its in-place writes are seen
        self.grad = None
        self.creator = None
        self.out_index = 0
        self.name = data.name if isinstance(data, Tensor) else None
        self._hooks = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer. Subclasses assign Parameters and Modules as attributes in
    `__init__` and define `forward`."""

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_name", None)

    # --------------------------------------------------------------------------- registration
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning "
                               f"attributes in __init__")
        params, modules = self.__dict__["_parameters"], self.__dict__["_modules"]
        params.pop(name, None)
        modules.pop(name, None)
        self.__dict__.pop(name, None)
        if isinstance(value, Parameter):
            if value.name is None:
                value.name = name
            params[name] = value
        elif isinstance(value, Module):
            if value._name is None:
                object.__setattr__(value, "_name", name)
            modules[name] = value
        elif name in self.__dict__["_buffers"]:
            self.__dict__["_buffers"][name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for store in ("_parameters", "_modules", "_buffers"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for store in ("_parameters", "_modules", "_buffers"):
            if name in self.__dict__[store]:
                del self.__dict__[store][name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is None:
            self._parameters.pop(name, None)
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, param)

    def register_buffer(self, name: str, tensor: Tensor | None) -> None:
        """A tensor saved in state_dict but not trained (e.g. running statistics)."""
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor

    def add_module(self, name: str, module: "Module | None") -> None:
        setattr(self, name, module)

    # ------------------------------------------------------------------------------- traversal
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        seen: set = set()
        stack = [(prefix, self)]
        while stack:
            name, m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield name, m
            children = [(f"{name}.{k}" if name else k, c) for k, c in m._modules.items() if c is not None]
            stack.extend(reversed(children))

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        for k, m in self._modules.items():
            if m is not None:
                yield k, m

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        seen: set = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mname, m in mods:
            for k, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mname}.{k}" if mname else k), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self) -> Iterator[tuple[str, Tensor]]:
        for mname, m in self.named_modules():
            for k, b in m._buffers.items():
                if b is not None:
                    yield (f"{mname}.{k}" if mname else k), b

    # ---------------------------------------------------------------------------------- modes
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.detach().zero_()

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    # --------------------------------------------------------------------------- device, dtype
    def to(self, device: Any = None, dtype: Any = None) -> "Module":
        """Move/cast every parameter and buffer in place (parameters keep their identity, so an
        optimizer created before .to() still updates them). Only float tensors change dtype."""
        if device is not None and (not isinstance(device, str) or device in _DTYPE_NAMES):
            device, dtype = None, device  # module.to("float64") / module.to(tg.float64)
        dev = backend.normalize_device(device) if device is not None else None
        dt = as_dtype(dtype) if dtype is not None else None
        if dt is not None and dt.kind != "f":
            raise DTypeError(f"Module.to: dtype must be a float type, got {dt}")
        for t in list(self.parameters()) + [b for _, b in self.named_buffers()]:
            arr = t.data
            if dt is not None and arr.dtype.kind == "f" and arr.dtype != dt:
                arr = arr.astype(dt)
            if dev is not None:
                arr = backend.to_device(arr, dev)
            if arr is not t.data:
                t.data = arr
                t._bump_version()  # a graph that saved t would read the moved/cast array
            if t.grad is not None:
                t.grad = None
        return self

    def double(self) -> "Module":
        return self.to(dtype="float64")

    def float(self) -> "Module":
        return self.to(dtype="float32")

    def cpu(self) -> "Module":
        return self.to("cpu")

    def cuda(self, device: str = "cuda") -> "Module":
        return self.to(device)

    # ------------------------------------------------------------------------------ state dict
    def state_dict(self) -> "OrderedDict[str, Tensor]":
        """Parameters and buffers by dotted name (detached tensors sharing the data)."""
        out: OrderedDict = OrderedDict()
        for k, p in self.named_parameters():
            out[k] = p.detach()
        for k, b in self.named_buffers():
            out[k] = b.detach()
        return out

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> tuple[list, list]:
        """Copy values (Tensors or NumPy/CuPy arrays) into the parameters, in place, keeping each
        parameter's dtype and device. Reports missing, unexpected and mis-shaped keys by name.
        Returns (missing_keys, unexpected_keys) when strict=False."""
        if not hasattr(state_dict, "items"):
            raise TypeError(f"load_state_dict into {type(self).__name__}: expected a dict name -> "
                            f"Tensor/array (from state_dict() or tinygrad_rnn.load), got "
                            f"{type(state_dict).__name__}")
        own = dict(self.named_parameters())
        own.update(dict(self.named_buffers()))
        # a PyTorch state_dict() as it is: its tensors are read through DLPack (shared, then copied in)
        kinds = {k: backend.type_name(v) for k, v in state_dict.items()}
        foreign = {k: kinds[k] + " " for k, v in state_dict.items()
                   if not isinstance(v, Tensor) and backend.is_dlpack(v)}
        state_dict = {k: backend.from_dlpack(v) if k in foreign else v for k, v in state_dict.items()}
        bad = [f"{k} ({kinds[k]})" for k, v in state_dict.items()
               if k in own and not (isinstance(v, Tensor) or backend.is_array(v))]
        if bad:
            raise TypeError(f"load_state_dict into {type(self).__name__}: values must be Tensors, "
                            f"NumPy/CuPy arrays or arrays with __dlpack__ (torch.Tensor, JAX); got "
                            f"{', '.join(bad)}")
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mis = []
        for k, v in state_dict.items():
            if k in own:
                shape = tuple(v.shape)
                if shape != tuple(own[k].shape):
                    mis.append(f"{k}: checkpoint {foreign.get(k, '')}{fmt_shape(shape)} vs model "
                               f"{fmt_shape(own[k].shape)}")
        problems = []
        if mis:
            problems.append("shape mismatch for " + "; ".join(mis))
        if strict and missing:
            problems.append(f"missing keys (in the model, not in the state dict): {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys (in the state dict, not in the model): {unexpected}")
        if problems:
            raise ShapeError(f"load_state_dict into {type(self).__name__} failed: " + "; ".join(problems)
                             + ". Check that the model is built with the same sizes/options as the one "
                               "that was saved, or pass strict=False to skip missing/unexpected keys")
        for k, v in state_dict.items():
            if k not in own:
                continue
            t = own[k]
            arr = v.data if isinstance(v, Tensor) else v
            arr = backend.to_device(backend.array_module(arr).asarray(arr), t.device)
            t.data[...] = arr.astype(t.data.dtype, copy=False)
            t._bump_version()
        return missing, unexpected

    # ------------------------------------------------------------------------------- calling
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with autograd.scope("module", self._name or type(self).__name__):
            return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}" + (")" if not self._modules else "")]
        if self._modules:
            for k, m in self._modules.items():
                sub = repr(m).replace("\n", "\n  ")
                lines.append(f"  ({k}): {sub}")
            lines.append(")")
        return "\n".join(lines)
