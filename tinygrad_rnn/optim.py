"""Optimizers with PyTorch's API and update formulas: SGD, Adam, AdamW, RMSprop, Adagrad.

Imports: the public core (backend, tensor, errors). Updates run on the raw arrays (NumPy or CuPy),
in place, outside the autograd graph. Hyperparameters are read as Python floats at every step:
under NumPy 2 promotion rules a NumPy float64 scalar would silently turn float32 arithmetic into
float64, while a Python float keeps the array's dtype.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable

from . import backend
from .autograd import enable_grad
from .errors import DeviceError, ShapeError, fmt_shape
from .tensor import Tensor

class Optimizer:
    """Base class: parameter groups, per-parameter state, zero_grad, state_dict/load_state_dict.

    `params` is an iterable of Tensors, or of dicts {"params": [...], "lr": ...} (one param group
    each, with its own hyperparameters; missing ones come from the defaults). Subclasses implement
    `_update(p, grad, state, group)` on arrays.
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], defaults: dict) -> None:
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict] = {}
        self.param_groups: list[dict] = []
        name = type(self).__name__
        if isinstance(params, Tensor):
            raise TypeError(f"{name}: params must be an iterable of Tensors or of dicts, got a single "
                            f"Tensor; pass [tensor] or model.parameters()")
        if hasattr(params, "parameters") and callable(params.parameters):
            raise TypeError(f"{name}: params must be an iterable of Tensors, got a "
                            f"{type(params).__name__} module; pass model.parameters()")
        try:
            groups = list(params)
        except TypeError:
            raise TypeError(f"{name}: params must be an iterable of Tensors or of dicts, got "
                            f"{type(params).__name__}") from None
        if not groups:
            raise ValueError(f"{name} got an empty parameter list: nothing to optimize. Did the model "
                             f"create its layers in __init__ (as attributes), and was the iterator "
                             f"model.parameters() already consumed?")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    # -------------------------------------------------------------------------- param groups
    def add_param_group(self, param_group: dict) -> None:
        """Add a group {"params": [...], **hyperparameters} (e.g. for layers unfrozen later)."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: a param group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if params is None:
            raise ValueError(f"{name}: a param group needs a 'params' entry")
        params = [params] if isinstance(params, Tensor) else list(params)
        if not params:
            raise ValueError(f"{name}: param group {len(self.param_groups)} has an empty params list")
        gi = len(self.param_groups)
        for i, p in enumerate(params):
            where = f"{name}: param group {gi}, params[{i}]" + (f" ({p.name!r})" if getattr(p, "name", None) else "")
            if not isinstance(p, Tensor):
                raise TypeError(f"{where} is a {type(p).__name__}, expected a Tensor")
            if p.creator is not None:
                raise ValueError(f"{where} is not a leaf tensor (it was computed by "
                                 f"{p.creator.name}), so it never gets a .grad; optimize the leaf it "
                                 f"came from, or make a new leaf with x.detach().requires_grad_()")
            if not p.requires_grad:
                raise ValueError(f"{where} does not require grad, so it never gets a gradient; "
                                 f"create it with requires_grad=True (or wrap it in nn.Parameter), or "
                                 f"leave it out of the optimizer")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            if id(p) in seen:
                raise ValueError(f"{name}: param group {gi}, params[{i}] appears more than once "
                                 f"(in this group or another); each parameter may be in one group only")
            seen.add(id(p))
        group["params"] = params
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self._validate(group, f"{name} (param group {gi})")
        self.param_groups.append(group)

    def _validate(self, group: dict, where: str) -> None:
        """Check hyperparameters; subclasses extend it."""
        _check(where, "lr", group["lr"], lo=0.0)

    # ---------------------------------------------------------------------------------- step
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients (set them to None, or to zeros with set_to_none=False)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.detach().zero_()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient. `closure` (optional) re-evaluates the
        model and returns the loss, which step returns."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.data
                if g.shape != p.data.shape:
                    raise ShapeError(f"{type(self).__name__}: parameter {p.name or ''} of shape "
                                     f"{fmt_shape(p.shape)} has a gradient of shape {fmt_shape(g.shape)}")
                if backend.device_of(g) != p.device:
                    raise DeviceError(f"{type(self).__name__}: parameter {p.name or ''} is on "
                                      f"{p.device} but its gradient is on {backend.device_of(g)}")
                if g.dtype != p.data.dtype:
                    g = g.astype(p.data.dtype)
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = {}
                else:
                    _match(state, p)
                self._update(p.data, g, state, group)
                p._bump_version()  # a backward through a graph that saved p now refuses
        return loss

    def _update(self, p: Any, g: Any, state: dict, group: dict) -> None:
        raise NotImplementedError

    # ----------------------------------------------------------------------------- state dict
    def _index(self) -> dict:
        return {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}

    def state_dict(self) -> dict:
        """{"state": {param index: {name: Tensor copy or number}}, "param_groups": [{hyperparams,
        "params": [indices]}]}: PyTorch's layout, parameters referred to by their position over all
        groups. The tensors are copies, so later steps do not change a saved state dict."""
        index = self._index()
        state = {}
        for p, s in self.state.items():
            state[index[id(p)]] = {k: Tensor._make(v.copy()) if backend.is_array(v) else v
                                   for k, v in s.items()}
        state = dict(sorted(state.items()))
        groups = []
        for g in self.param_groups:
            d = {k: v for k, v in g.items() if k != "params"}
            d["params"] = [index[id(p)] for p in g["params"]]
            groups.append(d)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore state and hyperparameters from `state_dict()` output (possibly saved and loaded).
        The groups must have the same sizes; state arrays are copied onto each parameter's device
        and floating ones cast to its dtype."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            keys = list(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"{name}.load_state_dict: expected a dict with 'state' and 'param_groups' "
                             f"(from optimizer.state_dict()), got {keys}; did you pass a model's "
                             f"state dict?")
        saved = list(state_dict["param_groups"])
        if len(saved) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state dict has {len(saved)} param groups, "
                             f"this optimizer has {len(self.param_groups)}")
        params = []
        for gi, (sg, g) in enumerate(zip(saved, self.param_groups)):
            missing = sorted(set(self.defaults) - set(sg))
            if missing:  # e.g. SGD's state loaded into Adam (its step would miss 'exp_avg')
                theirs = sorted(set(sg) - {"params"})
                raise ValueError(f"{name}.load_state_dict: param group {gi} of the state dict lacks "
                                 f"{name}'s hyperparameters {missing} (it has {theirs}): it was saved "
                                 f"by another optimizer type; load it into the optimizer type that saved it")
            if len(sg["params"]) != len(g["params"]):
                raise ValueError(f"{name}.load_state_dict: param group {gi} has {len(sg['params'])} "
                                 f"parameters in the state dict but {len(g['params'])} here; was the "
                                 f"optimizer built over the same model?")
            params.extend(zip(sg["params"], g["params"]))
        by_index = {int(i): p for i, p in params}
        new_state: dict = {}
        for k, s in state_dict["state"].items():
            i = int(k)
            if i not in by_index:
                raise ValueError(f"{name}.load_state_dict: state for parameter index {i}, which is in "
                                 f"no param group")
            p = by_index[i]
            ps = {}
            for key, v in s.items():
                if key == "step":  # an int here; PyTorch keeps it as a 0-d float tensor
                    v = int(v.item() if hasattr(v, "item") else v)
                elif isinstance(v, Tensor) or backend.is_array(v):
                    arr = v.data if isinstance(v, Tensor) else v
                    if arr.shape != p.data.shape and arr.ndim > 0:
                        raise ShapeError(f"{name}.load_state_dict: state {key!r} of parameter {i} has "
                                         f"shape {fmt_shape(arr.shape)} but the parameter has "
                                         f"{fmt_shape(p.shape)}; the model differs from the saved one")
                    arr = backend.to_device(arr, p.device)
                    xp = backend.array_module(arr)
                    v = xp.array(arr, dtype=p.data.dtype if arr.dtype.kind == "f" else arr.dtype, copy=True)
                ps[key] = v
            new_state[p] = ps
        for sg, g in zip(saved, self.param_groups):
            for k, v in sg.items():
                if k != "params":
                    g[k] = tuple(v) if isinstance(v, list) else v
            self._validate(g, f"{name}.load_state_dict")
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params")
        return "\n".join(lines + [")"])


def _check(where: str, name: str, value: Any, lo: float = 0.0, hi: float | None = None,
           hi_open: bool = False) -> None:
    if isinstance(value, bool):
        raise TypeError(f"{where}: {name} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{where}: {name} must be a number, got {value!r}") from None
    bad = math.isnan(v) or v < lo or (hi is not None and (v >= hi if hi_open else v > hi))
    if bad:
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"{where}: invalid {name} {value!r}; it must be {rng}")


def _match(state: dict, p: Tensor) -> None:
    """Move state arrays to the parameter's device/dtype if the model was moved after the
    optimizer took its first step (module.to(...) replaces parameter arrays)."""
    for k, v in state.items():
        if backend.is_array(v) and (v.dtype != p.data.dtype or backend.device_of(v) != p.device):
            v = backend.to_device(v, p.device)
            state[k] = v.astype(p.data.dtype) if v.dtype.kind == "f" else v


def _zeros(p: Any) -> Any:
    return backend.array_module(p).zeros_like(p)


# ===================================================================================== SGD
class SGD(Optimizer):
    """Stochastic gradient descent with momentum (PyTorch's formulation):

        g = grad + weight_decay * p
        b = g                                      (first step)
        b = momentum * b + (1 - dampening) * g     (later steps)
        g = g + momentum * b  if nesterov  else  b
        p = p - lr * g
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    def _validate(self, group: dict, where: str) -> None:
        super()._validate(group, where)
        _check(where, "momentum", group["momentum"])
        _check(where, "weight_decay", group["weight_decay"])
        _check(where, "dampening", group["dampening"], hi=1.0)
        if group["nesterov"] and (float(group["momentum"]) <= 0 or float(group["dampening"]) != 0):
            raise ValueError(f"{where}: nesterov=True needs momentum > 0 and dampening = 0")

    def _update(self, p: Any, g: Any, state: dict, group: dict) -> None:
        lr, mu, wd = float(group["lr"]), float(group["momentum"]), float(group["weight_decay"])
        if group["maximize"]:
            g = -g
        if wd != 0:
            g = g + wd * p
        if mu != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= mu
                buf += (1.0 - float(group["dampening"])) * g
            g = g + mu * buf if group["nesterov"] else buf
        state["step"] = state.get("step", 0) + 1
        p -= lr * g


# ==================================================================================== Adam
class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), PyTorch's formulation; t counts this parameter's steps:

        g = grad + weight_decay * p                (L2 penalty; AdamW decouples it)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        v_max = max(v_max, v)                      (amsgrad only; then v_max replaces v below)
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    _decoupled = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False,
                 maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def _validate(self, group: dict, where: str) -> None:
        super()._validate(group, where)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{where}: betas must be a pair (beta1, beta2), got {betas!r}")
        group["betas"] = tuple(betas)
        _check(where, "betas[0]", betas[0], hi=1.0, hi_open=True)
        _check(where, "betas[1]", betas[1], hi=1.0, hi_open=True)
        _check(where, "eps", group["eps"])
        _check(where, "weight_decay", group["weight_decay"])

    def _update(self, p: Any, g: Any, state: dict, group: dict) -> None:
        lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        b1, b2 = (float(b) for b in group["betas"])
        if group["maximize"]:
            g = -g
        if not state:
            state["step"] = 0
            state["exp_avg"], state["exp_avg_sq"] = _zeros(p), _zeros(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = _zeros(p)
        state["step"] = t = state["step"] + 1
        if wd != 0:
            if self._decoupled:
                p *= 1.0 - lr * wd
            else:
                g = g + wd * p
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * (g * g)
        if group["amsgrad"]:
            vmax = state.setdefault("max_exp_avg_sq", _zeros(p))
            backend.array_module(p).maximum(vmax, v, out=vmax)
            v = vmax
        step_size = lr / (1.0 - b1 ** t)
        denom = backend.array_module(p).sqrt(v) / math.sqrt(1.0 - b2 ** t) + eps
        p -= step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019): first p = p * (1 - lr *
    weight_decay), then the Adam step without the L2 term. Default weight_decay=1e-2."""

    _decoupled = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False,
                 maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)


# ================================================================================= RMSprop
class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e), PyTorch's formulation:

        g = grad + weight_decay * p
        v = alpha * v + (1 - alpha) * g^2
        centered: a = alpha * a + (1 - alpha) * g;  d = sqrt(v - a^2) + eps,  else  d = sqrt(v) + eps
        momentum > 0: b = momentum * b + g / d;  p = p - lr * b,  else  p = p - lr * g / d
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    def _validate(self, group: dict, where: str) -> None:
        super()._validate(group, where)
        _check(where, "alpha", group["alpha"], hi=1.0)
        _check(where, "eps", group["eps"])
        _check(where, "weight_decay", group["weight_decay"])
        _check(where, "momentum", group["momentum"])

    def _update(self, p: Any, g: Any, state: dict, group: dict) -> None:
        xp = backend.array_module(p)
        lr, alpha, eps = float(group["lr"]), float(group["alpha"]), float(group["eps"])
        wd, mu = float(group["weight_decay"]), float(group["momentum"])
        if group["maximize"]:
            g = -g
        if not state:
            state["step"] = 0
            state["square_avg"] = _zeros(p)
            if mu > 0:
                state["momentum_buffer"] = _zeros(p)
            if group["centered"]:
                state["grad_avg"] = _zeros(p)
        state["step"] += 1
        if wd != 0:
            g = g + wd * p
        v = state["square_avg"]
        v *= alpha
        v += (1.0 - alpha) * (g * g)
        if group["centered"]:
            a = state.setdefault("grad_avg", _zeros(p))
            a += (1.0 - alpha) * (g - a)  # PyTorch's lerp form of alpha * a + (1 - alpha) * g
            d = xp.sqrt(v - a * a) + eps
        else:
            d = xp.sqrt(v) + eps
        if mu > 0:
            buf = state.setdefault("momentum_buffer", _zeros(p))
            buf *= mu
            buf += g / d
            p -= lr * buf
        else:
            p -= lr * (g / d)


# ================================================================================= Adagrad
class Adagrad(Optimizer):
    """Adagrad (Duchi et al. 2011), PyTorch's formulation; t counts this parameter's steps:

        lr_t = lr / (1 + (t - 1) * lr_decay)
        g = grad + weight_decay * p
        s = s + g^2                                (s starts at initial_accumulator_value)
        p = p - lr_t * g / (sqrt(s) + eps)
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0, eps: float = 1e-10,
                 maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps,
                                      maximize=maximize))

    def _validate(self, group: dict, where: str) -> None:
        super()._validate(group, where)
        _check(where, "lr_decay", group["lr_decay"])
        _check(where, "weight_decay", group["weight_decay"])
        _check(where, "initial_accumulator_value", group["initial_accumulator_value"])
        _check(where, "eps", group["eps"])

    def _update(self, p: Any, g: Any, state: dict, group: dict) -> None:
        xp = backend.array_module(p)
        lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        if group["maximize"]:
            g = -g
        if not state:
            state["step"] = 0
            state["sum"] = xp.full_like(p, float(group["initial_accumulator_value"]))
        state["step"] = t = state["step"] + 1
        if wd != 0:
            g = g + wd * p
        clr = lr / (1.0 + (t - 1) * float(group["lr_decay"]))
        s = state["sum"]
        s += g * g
        p -= clr * (g / (xp.sqrt(s) + eps))


__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad"]
