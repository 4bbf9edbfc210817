"""Module: the base of layers and models; finds parameters by walking attributes and saves them."""
import collections
import os
import re
from collections.abc import Mapping

import numpy

from ..checkpoint import load_arrays, save_arrays
from ..checks import to_arguments
from ..device import array_module, canonical_device, to_device, to_numpy, use_device
from ..tensor import Tensor


# load_state_dict's answer: the (missing, unexpected) pair with torch's field names
IncompatibleKeys = collections.namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Anything with a forward(). Parameters are not registered: they are found by walking the
    attributes, in the order they were first assigned. An attribute is a parameter when it is a
    Tensor with requires_grad=True, or was one when assigned (a frozen weight stays a parameter); a Module, or a list/tuple of Modules, is walked recursively
    (named `layers.0.weight`). Tensors that must be saved but not trained are declared with
    register_buffer()."""

    training = True
    device = None
    # NOTE: {attribute: name in state_dict()} where a module saves a tensor under another name than its
    # attribute's (torch_nn.BatchNorm2d: torch's), and the saved names a file may lack (loaded as missing
    # from neither list): files written before such a name existed still load
    state_names = {}
    optional_state = ()

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        """Compute the output (override this); `module(x)` calls it."""
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    # ------------------------------------------------------------ walking the attributes

    def named_children(self):
        """(name, module) for direct sub-modules, list and tuple items named by their index."""
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        yield f"{name}.{i}", item

    def children(self):
        """The direct sub-modules (those of named_children()), as torch's."""
        return [m for _, m in self.named_children()]

    def apply(self, fn):
        """Call fn(module) on every sub-module, children before their parent, then on self, as torch's
        (the weight-initialisation habit: model.apply(init_weights)); returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def named_modules(self, prefix=""):
        """(dotted name, module) for self (name "") and every sub-module, each module once."""
        seen, stack = set(), [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{child}" if name else child, m) for child, m in module.named_children()]
            stack.extend(reversed(children))

    def modules(self):
        """Every module, self first, each once (the modules of named_modules())."""
        return [m for _, m in self.named_modules()]

    def __setattr__(self, name, value):
        # NOTE: a tensor assigned while it requires grad is remembered as a parameter, so that freezing it
        # later (p.requires_grad_(False), as in fine-tuning) keeps it in parameters() and state_dict(), as torch does
        if isinstance(value, Tensor) and (value.requires_grad or getattr(type(value), "listed_when_frozen", False)):
            self.__dict__.setdefault("_param_names", set()).add(name)
        object.__setattr__(self, name, value)

    def _named_tensors(self, want_params=True, want_buffers=True):
        seen = set()
        for prefix, module in self.named_modules():
            buffers = module.__dict__.get("_buffer_names", ())
            params = module.__dict__.get("_param_names", ())
            saved_as = getattr(module, "state_names", {})
            for name, value in vars(module).items():
                if not isinstance(value, Tensor) or id(value) in seen:
                    continue
                is_buffer = name in buffers
                is_param = not is_buffer and (value.requires_grad or name in params)
                if (is_buffer and want_buffers) or (is_param and want_params):
                    seen.add(id(value))  # NOTE: a tensor shared by two layers is listed (and trained) once
                    yield _dotted(prefix, saved_as.get(name, name)), value

    def named_parameters(self):
        """(dotted name, tensor) of every parameter, e.g. ("layers.0.weight", ...); frozen ones too, as torch's."""
        return Listed(self._named_tensors(want_buffers=False))

    def parameters(self):
        """The parameters, in a fixed order (what an optimizer takes); frozen ones (requires_grad False) too,
        as torch's: they get no gradient, so optimizers leave them alone. A list that next() also takes, as
        torch's generator: next(model.parameters()).device."""
        return Listed(p for _, p in self._named_tensors(want_buffers=False))

    def named_buffers(self):
        """(dotted name, tensor) of every buffer declared with register_buffer()."""
        return list(self._named_tensors(want_params=False))

    def buffers(self):
        """The buffers (those of named_buffers()), as torch's."""
        return Listed(t for _, t in self._named_tensors(want_params=False))

    def register_parameter(self, name, param):
        """torch's spelling of `self.name = param` for a parameter (None leaves the name unset, as torch)."""
        if param is not None and not isinstance(param, Tensor):
            raise TypeError(f"register_parameter: {name!r} must be a Tensor (nn.Parameter) or None, "
                            f"got {type(param).__name__}")
        setattr(self, name, param)

    def add_module(self, name, module):
        """torch's spelling of `self.name = module`."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module, got {type(module).__name__}")
        setattr(self, name, module)

    def register_buffer(self, name, tensor):
        """Store a tensor that state_dict() saves but optimizers never see (e.g. running statistics)."""
        if not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: {name!r} must be a Tensor, got {type(tensor).__name__}")
        self.__dict__.setdefault("_buffer_names", set()).add(name)
        setattr(self, name, tensor)

    def requires_grad_(self, requires_grad=True):
        """Freeze (False) or unfreeze every parameter, as torch's; frozen ones stay parameters. Returns self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def count_params(self):
        """Number of trainable scalars (Keras' name)."""
        return sum(p.size for p in self.parameters() if p.requires_grad)

    # ------------------------------------------------------------ modes and devices

    def train(self, mode=True):
        """Switch self and every sub-module to training mode (dropout active) or, with False, to eval."""
        if not isinstance(mode, (bool, numpy.bool_)):  # NOTE: train("no") was training mode (a true string)
            raise TypeError(f"train: mode must be True or False, got {mode!r}")
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self):
        """Switch self and every sub-module to evaluation mode (dropout off): `train(False)`."""
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        """Clear `.grad` of every parameter (set it to None; with set_to_none=False, as torch's, fill it
        with zeros in place)."""
        for p in self.parameters():
            p.grad = None if set_to_none or p.grad is None else p.grad.zero_()

    def to(self, *args, device=None, dtype=None, non_blocking=False):
        """Move parameters and buffers to a device and/or cast the floating-point ones to a float dtype, in
        place, as torch's module.to: to("cuda"), to(torch.float64), to("cuda", torch.float64), to(tensor).
        They stay the same leaf Tensor objects (so references held elsewhere see the change), but an
        optimizer's state does not follow a move, so create the optimizer after moving. Layers not yet built
        will build there, in that dtype."""
        device, dtype = to_arguments(None, args, device, dtype)
        if dtype is not None:
            if dtype.kind != "f":
                raise TypeError(f"{type(self).__name__}.to: dtype must be a floating-point type (torch casts only "
                                f"floating-point parameters), got {dtype}")
            self._cast_floats(dtype)
        if device is None:
            return self
        for module in self.modules():
            module.device = device
        for _, t in self._named_tensors():
            _move(t, device)
            if t.grad is not None:
                _move(t.grad, device)
        return self

    def _cast_floats(self, dtype):
        for module in self.modules():
            if isinstance(getattr(module, "dtype", None), numpy.dtype):
                module.dtype = dtype
        for _, t in self._named_tensors():
            if t.dtype.kind == "f" and t.dtype != dtype:
                with use_device(t.device):
                    t.data = t.data.astype(dtype)
                    t.grad = None if t.grad is None else Tensor.wrap(t.grad.data.astype(dtype), t.device)
                t.version_counter[0] += 1

    def double(self):
        """Cast the floating-point parameters and buffers to float64, as torch's (gradcheck wants it)."""
        return self.to(dtype=numpy.dtype("float64"))

    def float(self):
        """Cast the floating-point parameters and buffers to float32, as torch's."""
        return self.to(dtype=numpy.dtype("float32"))

    def half(self):
        """Cast the floating-point parameters and buffers to float16, as torch's."""
        return self.to(dtype=numpy.dtype("float16"))

    def cuda(self, index=0):
        """Move to GPU `index`: `to(f"cuda:{index}")` (DeviceError without CuPy or a GPU)."""
        return self.to(f"cuda:{index}")

    def cpu(self):
        """Move to the CPU: `to("cpu")`."""
        return self.to("cpu")

    # ------------------------------------------------------------ checkpoints

    def state_dict(self):
        """{dotted name: NumPy copy} of every parameter and buffer."""
        return {name: numpy.array(to_numpy(t.data), copy=True) for name, t in self._named_tensors()}

    def load_state_dict(self, state, strict=True):
        """Copy arrays into the parameters (cast to each parameter's dtype, onto its device).

        Everything is checked before anything is written: a missing or unexpected name (only when
        strict) or a shape mismatch raises one ValueError that lists each problem, and leaves the
        model unchanged. Returns (missing, unexpected) name lists, a pair also read by torch's field names:
        `result.missing_keys`, `result.unexpected_keys`."""
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state_dict needs a mapping of name -> array, got {type(state).__name__}")
        unbuilt = [name or type(m).__name__ for name, m in self.named_modules() if _may_make_weights(m)]
        if unbuilt:
            raise ValueError(f"load_state_dict: {', '.join(unbuilt)} not built yet, so the parameter shapes are "
                             f"unknown; build the model first (Sequential(..., input_shape=...), "
                             f"model.build(input_shape) or one call on a batch)")
        own = dict(self._named_tensors())
        modules = list(self.named_modules())
        aliases = {_dotted(p, name): _dotted(p, saved) for p, m in modules for name, saved in getattr(m, "state_names", {}).items()}
        state = _old_names_renamed(state, own, aliases)
        optional = {_dotted(p, name) for p, m in modules for name in getattr(m, "optional_state", ())}
        missing = [name for name in own if name not in state and name not in optional]
        unexpected = [name for name in state if name not in own]
        problems = []
        if strict:
            problems += [f"missing key {name!r} (model shape {own[name].shape})" for name in missing]
            problems += [f"unexpected key {name!r}" for name in unexpected]
        values = {}
        for name, t in own.items():
            if name not in state:
                continue
            value = state[name]
            value = value.numpy() if isinstance(value, Tensor) else numpy.asarray(to_numpy(value))
            if value.dtype.kind not in "biuf":
                problems.append(f"{name!r}: dtype {value.dtype} is not numeric")
            elif tuple(value.shape) != t.shape:
                problems.append(f"{name!r}: checkpoint shape {tuple(value.shape)}, model shape {t.shape}")
            else:
                values[name] = value
        if problems:
            raise ValueError("load_state_dict: the state does not fit this model:\n  " + "\n  ".join(problems))
        for name, value in values.items():
            t = own[name]
            with use_device(t.device):
                t.data = to_device(numpy.array(value, dtype=t.dtype, copy=True), t.device)
        return IncompatibleKeys(missing, unexpected)

    def save(self, path):
        """Write state_dict() to `path` as .safetensors (what PyTorch and Hugging Face load), or as .npz
        when the name ends in .npz; atomically: a crash mid-write leaves any previous file at `path` intact.
        The name is used as given (nothing appended): any other extension raises CheckpointError."""
        save_arrays(path, self.state_dict())

    def load(self, path, strict=True):
        """Load a .safetensors or .npz file written by save(), or the model part of a training checkpoint
        (its `model/` arrays, as examples/mnist.py writes them); a truncated, corrupt or malformed file
        raises CheckpointError (a ValueError) naming the file, and one that does not fit names the mismatches."""
        state = load_arrays(path)
        own = dict(self._named_tensors())
        if not any(name in state for name in own) and any(k.startswith("model/") for k in state):
            # a training checkpoint (examples/mnist.py): model/<name>, optim/<name>, meta/...; take the model
            state = {k[len("model/"):]: v for k, v in state.items() if k.startswith("model/")}
        try:
            return self.load_state_dict(state, strict=strict)
        except ValueError as e:
            raise ValueError(f"checkpoint {os.fspath(path)!r}: {e}") from None

    def __repr__(self):
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}()"
        lines = [f"  ({name}): {repr(m).replace(chr(10), chr(10) + '  ')}" for name, m in children]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


class Listed(list):
    """A list that next() walks from its start, as it would torch's generator (`next(model.parameters())`).

    NOTE: a list, not a generator, so that len(), indexing and a second loop work as this package's code and
    docs use them; each parameters() call makes a new one, so next() starts again at the first item."""

    def __next__(self):
        i = self.__dict__.get("_next", 0)
        if i >= len(self):
            raise StopIteration
        self._next = i + 1
        return self[i]


def _old_names_renamed(state, own, aliases):
    """`state` with each key this model does not have renamed, where that gives one of its names not given:
    torch_nn.Sequential named its layers `layers.<i>` before it took torch's `<i>` (`features.layers.0.weight`
    is now `features.0.weight`), and files saved then still load.

    NOTE: only unknown keys are renamed, and only onto a name of this model that the state lacks, so a
    model whose own names hold `layers.<i>` (nn.Sequential's) loads exactly as before. `aliases` maps a tensor's
    attribute name to its saved one where a module saves it under another (torch_nn.BatchNorm2d's `moving_mean`
    is `running_mean`), so files saved under the attribute names load too."""
    if all(key in own for key in state):
        return state
    renamed = {}
    for key, value in state.items():
        stripped = re.sub(r"(?:^|(?<=\.))layers\.(?=\d+\.)", "", key)
        new = key if key in own else aliases.get(key, aliases.get(stripped, stripped))
        renamed[new if new in own and new not in state and new not in renamed else key] = value
    return renamed


def _dotted(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def _may_make_weights(module):
    """True for a module not built yet that could still make weights on its first input: a container is
    judged by its children, and a layer makes weights only when its class builds some (Layer.makes_weights).

    NOTE: so Sequential(Linear(5, 4), ReLU(), Linear(4, 3)), whose weights exist at once, takes a state_dict
    before its first call, as torch's does."""
    if getattr(module, "built", True) is not False or any(True for _ in module.named_children()):
        return False
    return getattr(module, "makes_weights", lambda: True)()


def _move(t, device):
    """Re-home a tensor's array on `device`, keeping the Tensor object (and its leaf status)."""
    if t.device == device:
        return
    with use_device(device):
        t.data = to_device(t.data, device)
    t.device = device
    t.xp = array_module(device)
