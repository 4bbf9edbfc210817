"""Write docs/api.md, the reference of every public name, from the signatures and docstrings.

    python docs/make_api.py            # rewrite docs/api.md
    python docs/make_api.py --check    # exit 1 when docs/api.md is stale

A public name is one in the module's __all__ or, for a module without __all__, a function, class
or UPPER_CASE constant defined there. Classes list their public members, including those inherited
from private bases. tests/test_docs.py fails when api.md differs from what this script writes, so
a renamed function or a changed docstring shows up as a stale reference. Every public function,
method, property and class needs a docstring of its own; only names that cannot carry one
(constants, class attributes) are described in FILL_INS.
"""
import argparse
import importlib
import inspect
import os
import re
import sys
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
OUT = os.path.join(ROOT, "docs", "api.md")

# (module, one line on what it is for), in the order of the page
MODULES = {
    "tinygrad_cnn": "The top level: `Tensor`, `Function`, grad switches, seeding, tensor factories, and the "
                    "submodules as attributes (`import tinygrad_cnn as tg; tg.nn.Dense`).",
    "tinygrad_cnn.nn": "Layers, `Sequential` and `Module`; `import tinygrad_cnn.nn as nn`.",
    "tinygrad_cnn.torch_nn": "torch.nn's spelling for PyTorch code (`import tinygrad_cnn.torch_nn as nn`): "
                             "`Conv2d` and `Linear` in PyTorch's argument order, and the rest of `nn` under the same "
                             "names; see [from-pytorch.md](from-pytorch.md).",
    "tinygrad_cnn.torch_functions": "torch's top-level functions (`torch.cat`, `torch.tensor`, `torch.max(x, 1)`, "
                                    "`torch.save`, ...), all also attributes of `tinygrad_cnn` (`import tinygrad_cnn "
                                    "as torch`), as are torch's dtype names (`torch.long`, `torch.float`); see "
                                    "[from-pytorch.md](from-pytorch.md).",
    "tinygrad_cnn.torch_data": "torch.utils.data's spelling (`from tinygrad_cnn.utils.data import DataLoader, "
                               "TensorDataset, Dataset`): batches of a Dataset as torch's default collate makes them.",
    "tinygrad_cnn.nn.functional": "Stateless layer functions and the losses; usually imported as `F`.",
    "tinygrad_cnn.nn.init": "Weight initialisers, by name (`kernel_initializer='he_uniform'`) or as functions.",
    "tinygrad_cnn.optim": "Optimizers and learning-rate schedules.",
    "tinygrad_cnn.data": "Minibatches from NumPy arrays.",
    "tinygrad_cnn.datasets.mnist": "The MNIST digits.",
    "tinygrad_cnn.checkpoint": "Saving and loading dicts of arrays (.safetensors, .npz).",
    "tinygrad_cnn.onnx": "ONNX export of a Sequential (needs the `onnx` extra); see [interop.md](interop.md).",
    "tinygrad_cnn.interop": "Weights under the names and layouts of the equivalent `torch.nn.Sequential`, and back "
                            "(no torch needed); see [interop.md](interop.md).",
    "tinygrad_cnn.device": "Device names and array modules (NumPy or CuPy).",
    "tinygrad_cnn.kernels.parallel": "Threads per op on the CPU (the batch split over cores; needs the `fast` extra).",
    "tinygrad_cnn.distributed": "Data-parallel training over MPI and NCCL (needs the `distributed` extra to run "
                                "on more than one process); see [distributed.md](distributed.md).",
    "tinygrad_cnn.memory": "Keeping freed host memory for reuse between training steps.",
    "tinygrad_cnn.keras": "Keras' API over `nn`: `Sequential` with compile/fit/evaluate/predict; the tutorial's "
                          "`tf.keras` code runs after `import tinygrad_cnn as tf`.",
    "tinygrad_cnn.keras.layers": "`nn`'s layers with Keras' defaults (channels-last) and arguments (`input_shape=`).",
    "tinygrad_cnn.keras.optimizers": "Keras' optimizers: hyperparameters first, the model's parameters at fit.",
    "tinygrad_cnn.keras.losses": "Keras' losses, called as loss(y_true, y_pred).",
    "tinygrad_cnn.keras.callbacks": "Keras' callbacks for fit, evaluate and predict.",
    "tinygrad_cnn.keras.metrics": "Keras' metric objects (update_state, result, reset_state); accuracies for compile.",
    "tinygrad_cnn.keras.utils": "keras.utils as tutorials use it: to_categorical, set_random_seed, normalize (and "
                                "the register of your own classes).",
    "tinygrad_cnn.keras.backend": "keras.backend's settings: `epsilon()` (and `set_epsilon`), `floatx()`, "
                                  "`image_data_format()`.",
    "tinygrad_cnn.keras.config": "keras.config: Keras 3's other spelling of keras.backend's settings.",
    "tinygrad_cnn.keras.registry": "Your own classes for `.keras` files: `register_keras_serializable`, "
                                   "`custom_object_scope` (also in keras.saving and keras.utils).",
    "tinygrad_cnn.keras.ops": "keras.ops-style functions on arrays or Tensors, returning Tensors.",
    "tinygrad_cnn.keras.saving": "`.keras` files (Keras 3's format) both ways; needs the `h5` extra (h5py). See "
                                 "[from-keras.md](from-keras.md).",
    "tinygrad_cnn.random": "`tf.random.set_seed`: TensorFlow's name for manual_seed.",
    "tinygrad_cnn.cuda": "`torch.cuda.is_available()`: whether CuPy can use a GPU.",
    "tinygrad_cnn.testing": "Gradient checks for your own ops.",
    "tinygrad_cnn.testing.strategies": "Hypothesis strategies for op tests (needs the `test` extra).",
    "tinygrad_cnn.conv": "The convolution and pooling ops and their size arithmetic (used by `nn`).",
    "tinygrad_cnn.ops": "The primitive ops behind `Tensor`'s methods; see [how-it-works.md](how-it-works.md).",
    "tinygrad_cnn.norms": "torch's vector norms (`x.norm`, `torch.norm`, `torch.linalg.vector_norm`) as one op, off the reading path.",
    "tinygrad_cnn.autograd_functional": "torch.autograd.functional's spelling (also `tinygrad_cnn.autograd.functional`): "
                                        "`vjp`, `jvp`, `jacobian`, `hessian`, `vhp`, `hvp` with torch's signatures and "
                                        "nesting of the results; see [from-pytorch.md](from-pytorch.md).",
    "tinygrad_cnn.autograd": "Function, the grad switches, the backward walk, and the table of kernel substitutions.",
    "tinygrad_cnn.kernels": "Every speed choice, each replacing a reference op or layer sequence (`kernels.TABLE`), "
                            "and the switch to the reference path (`TINYGRAD_CNN_KERNELS=reference`, `reference()`).",
}

# Names that cannot carry a docstring of their own (constants, class attributes, a function stored
# as a class attribute): a short line says what they are. Everything else needs a docstring.
FILL_INS = {
    "Function.keeps_inputs": "Whether backward reads the inputs' arrays; an op that does not says False. "
                             "Where True, an input changed in place before backward() makes it raise.",
    "Function.keeps_output": "Whether backward reads the output's array, with the same check.",
    "Function.recorded": "Set by apply() before forward: whether the op is recorded (some input needs a "
                         "gradient, outside no_grad). A forward may then skip what only backward reads.",
    "tinygrad_cnn.kernels.ENV": "'TINYGRAD_CNN_KERNELS': set to 'reference' to run the reference ops.",
    "tinygrad_cnn.kernels.TABLE": "One Row per substitution: the reference, its kernel, the device kinds, and why.",
    "tinygrad_cnn.float32": "numpy.dtype('float32'), the default float type.",
    "tinygrad_cnn.float64": "numpy.dtype('float64').",
    "tinygrad_cnn.nn.ACTIVATIONS": "The activations known by name (`activation='relu'`).",
    "tinygrad_cnn.keras.layers.DEFAULT_DATA_FORMAT": "'channels_last', as in Keras: (N, H, W, C) images.",
    "tinygrad_cnn.keras.optimizers.NAMES": "The optimizers known by name (`optimizer='adam'`).",
    "tinygrad_cnn.keras.losses.NAMES": "The losses known by name (`loss='sparse_categorical_crossentropy'`).",
    "tinygrad_cnn.keras.losses.EPSILON": "1e-7: probabilities are clipped to [EPSILON, 1 - EPSILON] before a log, as in Keras.",
    "tinygrad_cnn.nn.DATA_FORMATS": "The axis orders image layers take (`data_format=`): (N, C, H, W) or (N, H, W, C).",
    "tinygrad_cnn.nn.init.INITIALIZERS": "The initialisers known by name (`kernel_initializer='he_uniform'`).",
    "tinygrad_cnn.kernels.parallel.MIN_ELEMENTS": "Ops smaller than this many elements run as one call: threads would cost "
                                          "more than they save.",
    "tinygrad_cnn.kernels.conv.CHUNK_BYTES": "Largest matrix, in bytes, that a chunk of images may need in a "
                                     "convolution (a chunk's im2col rows and output stay in cache).",
    "tinygrad_cnn.kernels.parallel.PIECES": "The least number of pieces (conv chunks, split products) that work whose "
                                            "bits depend on the cut is split into, fixed so that results never depend "
                                            "on the thread count.",
    "tinygrad_cnn.datasets.mnist.INFO": "Name, authors and license of the dataset.",
    "tinygrad_cnn.device.DEFAULT_DEVICE_ENV": "The environment variable that names the default device "
                                              "(used wherever device=None).",
    "Tensor.grad_home": "None, or (view, references, device): the view of an optimizer's flat gradient buffer "
                        "that a kernel may write this parameter's gradient into (kernels/homes.py).",
    "Module.training": "True in training mode (dropout active), False after eval().",
    "Module.device": "The device of the module's tensors (None until built or moved).",
    "Layer.default_name": "The base of the names Sequential gives to unnamed layers.",
    "Optimizer.state_names": "Names of the per-parameter state arrays (e.g. 'exp_avg').",
    "ReLU.fn": "The function the layer applies (nn.functional.relu).",
    "Sigmoid.fn": "The function the layer applies (nn.functional.sigmoid).",
    "Tanh.fn": "The function the layer applies (nn.functional.tanh).",
}

# Instance attributes set in __init__, which inspect cannot see.
ATTRIBUTES = {
    "Tensor": [
        ("data", "The array: a NumPy array on the CPU, a CuPy array on a GPU. Optimizers update it in place."),
        ("device", "Where the data live: 'cpu' or 'cuda:N'."),
        ("xp", "The array module of the device: numpy or cupy."),
        ("requires_grad", "Whether backward() computes a gradient for this tensor (or, for an op's output, "
                          "whether any input needs one)."),
        ("grad", "The gradient accumulated by backward(), a Tensor of the same shape, or None."),
        ("grad_fn", "The Function (op) that made this tensor, whose `parents` are its inputs: what backward() "
                    "walks. None for a leaf, or for a result computed without grad."),
        ("version_counter", "A one-element list counting in-place changes to the data, shared with views and "
                            "`detach()`; backward() refuses to run when an op's saved input changed since."),
    ],
    "Layer": [
        ("name", "The layer's name (Sequential names unnamed layers: conv2d, conv2d_1, ...)."),
        ("built", "Whether build() has created the weights."),
        ("input_shape", "The input shape (no batch axis) the layer was built for, or None."),
        ("dtype", "The float dtype of the weights (float32 unless given)."),
    ],
    "Conv2D": [("weight", "The kernels, shape (filters, in_channels, KH, KW); None before build."),
               ("bias", "Shape (filters,), or None without bias or before build.")],
    "Dense": [("weight", "Shape (units, in_features); None before build."),
              ("bias", "Shape (units,), or None without bias or before build.")],
    "Sequential": [("layers", "The list of layers, in order.")],
    "Optimizer": [("params", "The list of parameters it updates."),
                  ("state", "One dict of state arrays per parameter (momentum, Adam moments)."),
                  ("steps", "How many updates each parameter has had (kept by the kernel while one runs the steps)."),
                  ("engine", "The kernel that runs the steps (kernels/optim.py), or None on the reference path."),
                  ("lr", "The learning rate; schedules change it between epochs.")],
    "LRScheduler": [("optimizer", "The optimizer whose `lr` it sets."),
                    ("base_lrs", "[base_lr], torch's list (one parameter group): the optimizer's learning rate "
                                 "when this schedule was created; the closed form starts from it. NOTE: torch "
                                 "takes the first schedule's, kept in the group's 'initial_lr', which this "
                                 "optimizer has not; they differ for a schedule made after the rate changed."),
                    ("last_epoch", "How many epochs step() has counted (0 after construction, as torch's).")],
    "Function": [
        ("xp", "The array module (numpy or cupy) of the inputs' device; use it instead of importing numpy."),
        ("device", "The inputs' device."),
        ("parents", "The input tensors (set by apply() when a gradient is needed)."),
        ("needs_input_grad", "One bool per input: whether backward must return its gradient."),
    ],
}

OPERATORS = {
    "__add__": "a + b", "__radd__": "1 + a", "__sub__": "a - b", "__rsub__": "1 - a", "__mul__": "a * b",
    "__rmul__": "2 * a", "__truediv__": "a / b", "__rtruediv__": "1 / a", "__pow__": "a ** b",
    "__rpow__": "2 ** a", "__neg__": "-a", "__pos__": "+a", "__matmul__": "a @ b", "__rmatmul__": "x @ a",
    "__lt__": "a < b", "__le__": "a <= b", "__gt__": "a > b", "__ge__": "a >= b", "__eq__": "a == b",
    "__ne__": "a != b", "__getitem__": "a[index]", "__len__": "len(a)", "__bool__": "bool(a)",
    "__iter__": "iter(a)", "__call__": "f(x)", "__repr__": "repr(a)",
}


def public_names(module):
    """__all__ when the module has one; else its own functions and classes and UPPER_CASE constants."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    names = []
    for name, value in vars(module).items():
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        own = getattr(value, "__module__", None) == module.__name__
        if own and callable(value) or name.isupper():
            names.append(name)
    return names


def _escape(text):
    """Keep Markdown from reading `*` and `<` in plain text as emphasis or HTML (code spans untouched)."""
    parts = re.split(r"(``.*?``|`[^`]*`)", text)
    return "".join(p if p.startswith("`") else p.replace("*", r"\*").replace("<", "&lt;") for p in parts)


def _doc(obj, key):
    doc = inspect.getdoc(obj) if obj is not None else None
    if key in FILL_INS:
        return FILL_INS[key] + ("\n\n" + doc if doc and not _inherited_doc(obj) else "")
    if not doc or _inherited_doc(obj):
        raise SystemExit(f"make_api.py: {key} has no docstring of its own; write one (a line saying what it does)")
    return doc


def _inherited_doc(obj):
    """inspect.getdoc falls back to a parent's docstring; do not repeat a generic one under a fill-in."""
    return getattr(obj, "__doc__", None) is None


def _default(value):
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}".replace("builtins.", "")
    if callable(value) and hasattr(value, "__name__"):
        return value.__name__
    return repr(value)


def _signature(obj):
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    params = []
    for p in sig.parameters.values():
        if p.default is not inspect.Parameter.empty:
            params.append(p.replace(default=_Raw(_default(p.default))))
        else:
            params.append(p)
    return str(sig.replace(parameters=params, return_annotation=inspect.Signature.empty))


class _Raw:
    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text


def _block(lines, code):
    lines += ["```text", code, "```", ""]  # NOTE: text, not python: signatures are not runnable code


def _paragraph(lines, text):
    if text:
        lines += [_escape(text), ""]


def _members(cls):
    """(name, raw attribute, owner) of public members: the class's own and those of private bases."""
    owners = []
    for klass in cls.__mro__:
        if klass is object or (klass is not cls and not klass.__name__.startswith("_")):
            break
        owners.append(klass)
    seen, out = set(), []
    for klass in owners:
        for name, value in vars(klass).items():
            if name in seen or (name.startswith("_") and name not in OPERATORS):
                continue
            seen.add(name)
            out.append((name, value, klass))
    return out


def _public_base(cls):
    for klass in cls.__mro__[1:]:
        if klass is not object and not klass.__name__.startswith("_"):
            return klass
    return None


def _render_op(lines, qualified, cls):
    """An op (a Function subclass) in brief: what forward takes, and its docstring."""
    from tinygrad_cnn import Function
    lines += [f"### `{qualified}`", ""]
    forward = _signature(cls.forward).replace("(self, ", "(").replace("(self)", "()")
    _block(lines, f"class {cls.__name__}(Function)    # {cls.__name__}.apply{forward}")
    if not (FILL_INS.get(qualified) or cls.__doc__):
        raise SystemExit(f"make_api.py: the op {qualified} has no docstring; say what it computes")
    _paragraph(lines, FILL_INS.get(qualified) or inspect.getdoc(cls))


def _render_class(lines, qualified, cls, level="###"):
    from tinygrad_cnn import Function
    if issubclass(cls, Function) and cls is not Function:
        return _render_op(lines, qualified, cls)
    lines += [f"{level} `{qualified}`", ""]
    base = _public_base(cls)
    signature = "" if issubclass(cls, BaseException) else _signature(cls)  # exceptions: (*args) says nothing
    header = f"class {cls.__name__}{signature}"
    if base is not None:
        article = "an" if base.__name__[0] in "AEIOU" else "a"
        header += f"    # {article} {base.__name__}"
    _block(lines, header)
    _paragraph(lines, _doc(cls, qualified))
    operators, members = [], []
    for name, value, _ in _members(cls):
        if name in OPERATORS:
            if not (name == "__repr__" or value is None):
                operators.append(f"`{OPERATORS[name]}`")
        else:
            members.append((name, value))
    if operators:
        lines += ["Operators and protocols: " + ", ".join(operators) + ".", ""]
    for name, text in ATTRIBUTES.get(cls.__name__, []):
        lines += [f"#### `{cls.__name__}.{name}`", "", "Attribute. " + text, ""]
    for name, value in members:
        key = f"{cls.__name__}.{name}"
        lines += [f"#### `{key}`", ""]
        if isinstance(value, property):
            _paragraph(lines, "Property. " + _doc(value.fget, key))
            continue
        if isinstance(value, (classmethod, staticmethod)):
            kind, value = type(value).__name__, value.__func__
            _block(lines, f"@{kind}\n{name}{_signature(value)}")
            _paragraph(lines, _doc(value, key))
            continue
        if inspect.isfunction(value):
            if value.__name__ != name:
                _paragraph(lines, f"Alias of `{cls.__name__}.{value.__name__}`.")
                continue
            signature = _signature(value)
            signature = re.sub(r"^\(self, |^\(self\)", lambda m: "(" if m.group(0).endswith(", ") else "()", signature)
            _block(lines, f"{name}{signature}")
            _paragraph(lines, _doc(value, key))
            continue
        _paragraph(lines, f"Class attribute, default `{value!r}`." + (f" {FILL_INS[key]}" if key in FILL_INS else ""))


def _render_name(lines, module, name):
    qualified = f"{module.__name__}.{name}"
    value = getattr(module, name)
    if isinstance(value, types.ModuleType):
        lines += [f"### `{qualified}`", "", f"The module `{value.__name__}`"
                  + (" (see its section below)." if value.__name__ in MODULES else "."), ""]
        return
    origin = getattr(value, "__module__", "") or ""
    if callable(value) and not origin.startswith("tinygrad_cnn"):
        lines += [f"### `{qualified}`", "", f"Re-exported from `{origin.split('.')[0]}`: "
                  f"`{origin.split('.')[0]}.{value.__name__}{_signature(value)}`.", ""]
        return
    if getattr(value, "__name__", name) != name and (inspect.isclass(value) or inspect.isfunction(value)):
        lines += [f"### `{qualified}`", "", f"Alias of `{module.__name__}.{value.__name__}`.", ""]
        return
    if inspect.isclass(value):
        _render_class(lines, qualified, value)
    elif callable(value):
        lines += [f"### `{qualified}`", ""]
        _block(lines, f"{name}{_signature(value)}")
        _paragraph(lines, _doc(value, qualified))
    else:
        lines += [f"### `{qualified}`", ""]
        _block(lines, f"{name} = {_constant(value)}")
        _paragraph(lines, FILL_INS.get(qualified, ""))
        if qualified not in FILL_INS:
            raise SystemExit(f"make_api.py: say what {qualified} is in FILL_INS")


def _constant(value):
    if isinstance(value, list) and any(callable(x) for row in value if isinstance(row, tuple) for x in row):
        return f"[... {len(value)} rows: print(tinygrad_cnn.kernels.table())]"  # NOTE: a repr would show addresses
    if isinstance(value, dict) and all(callable(v) or v is None for v in value.values()):
        return "{" + ", ".join(f"{k!r}: {getattr(v, '__name__', v)}" for k, v in value.items()) + "}"
    return repr(value)


def render():
    """The text of docs/api.md."""
    lines = ["# API reference", "",
             "Generated by `python docs/make_api.py` from the signatures and docstrings; do not edit by hand.",
             "`tests/test_docs.py` fails when this page is stale or misses a public name.", "",
             "Modules:", ""]
    for name, purpose in MODULES.items():
        anchor = name.replace(".", "")
        lines.append(f"- [`{name}`](#{anchor}): {purpose}")
    lines.append("")
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        lines += [f"## {module_name}", ""]
        _paragraph(lines, inspect.getdoc(module))
        for name in public_names(module):
            _render_name(lines, module, name)
    while lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="do not write; exit 1 when docs/api.md is stale")
    args = p.parse_args(argv)
    text = render()
    if args.check:
        with open(OUT, encoding="utf-8") as f:
            stale = f.read() != text
        print("docs/api.md is stale: run python docs/make_api.py" if stale else "docs/api.md is up to date")
        return 1 if stale else 0
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(OUT)} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
