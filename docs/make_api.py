"""Write docs/api.md, the reference of every public name, from the signatures and docstrings.

    python docs/make_api.py            # rewrite docs/api.md
    python docs/make_api.py --check    # exit 1 when docs/api.md is stale

A public name is one in the module's __all__ or, for a module without __all__, a function, class
or UPPER_CASE constant defined there. Classes list their public members, including those inherited
from private bases. tests/test_docs.py fails when api.md differs from what this script writes, so
a renamed function or a changed docstring shows up as a stale reference.
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
    "tinygrad_cnn": "The top level: `Tensor`, `Function`, grad switches, seeding and tensor factories.",
    "tinygrad_cnn.nn": "Layers, `Sequential` and `Module`; `import tinygrad_cnn.nn as nn`.",
    "tinygrad_cnn.nn.functional": "Stateless layer functions and the losses; usually imported as `F`.",
    "tinygrad_cnn.nn.init": "Weight initialisers, by name (`kernel_initializer='he_uniform'`) or as functions.",
    "tinygrad_cnn.optim": "Optimizers and learning-rate schedules.",
    "tinygrad_cnn.data": "Minibatches from NumPy arrays.",
    "tinygrad_cnn.datasets.mnist": "The MNIST digits.",
    "tinygrad_cnn.checkpoint": "Saving and loading dicts of arrays.",
    "tinygrad_cnn.device": "Device names and array modules (NumPy or CuPy).",
    "tinygrad_cnn.testing": "Gradient checks for your own ops.",
    "tinygrad_cnn.testing.strategies": "Hypothesis strategies for op tests (needs the `test` extra).",
    "tinygrad_cnn.conv": "The convolution and pooling ops and their size arithmetic (used by `nn`).",
    "tinygrad_cnn.ops": "The primitive ops behind `Tensor`'s methods; see [how-it-works.md](how-it-works.md).",
}

# Names whose docstring is missing or does not say what the name does; a short line fills in.
FILL_INS = {
    "Tensor.shape": "The shape, a tuple of ints.",
    "Tensor.ndim": "The number of axes.",
    "Tensor.size": "The number of elements.",
    "Tensor.dtype": "The NumPy dtype (float32, float64, an integer type or bool).",
    "Tensor.is_leaf": "True for a tensor not produced by an op (made by you, or under `no_grad`).",
    "Tensor.T": "The transpose (axes reversed).",
    "Tensor.item": "The value of a one-element tensor as a Python number.",
    "Tensor.tolist": "The values as nested Python lists.",
    "Tensor.cpu": "The tensor on the CPU (`to('cpu')`).",
    "Tensor.cuda": "The tensor on GPU `index` (`to(f'cuda:{index}')`).",
    "Tensor.float": "Cast to float32.",
    "Tensor.double": "Cast to float64.",
    "Tensor.zero_grad": "Clear `.grad`.",
    "Tensor.any": "True when any element is nonzero (a Python bool, no gradient).",
    "Tensor.all": "True when every element is nonzero (a Python bool, no gradient).",
    "Tensor.exp": "Elementwise e**x.",
    "Tensor.log": "Elementwise natural logarithm.",
    "Tensor.sqrt": "Elementwise square root.",
    "Tensor.abs": "Elementwise absolute value (gradient sign(x), 0 at 0).",
    "Tensor.tanh": "Elementwise hyperbolic tangent.",
    "Tensor.relu": "Elementwise max(x, 0) (gradient 0 at 0).",
    "Tensor.sigmoid": "Elementwise 1 / (1 + exp(-x)), computed via tanh so it never overflows.",
    "Tensor.clip": "Clamp to [low, high] (either may be None); the gradient passes inside, bounds included.",
    "Tensor.maximum": "Elementwise maximum with a tensor or number (ties share the gradient).",
    "Tensor.minimum": "Elementwise minimum with a tensor or number (ties share the gradient).",
    "Tensor.sum": "Sum over `axis` (None: all axes; an int or a tuple).",
    "Tensor.mean": "Mean over `axis` (None: all axes; an int or a tuple).",
    "Tensor.max": "Maximum over `axis`; tied maxima share the gradient equally.",
    "Tensor.min": "Minimum over `axis`; tied minima share the gradient equally.",
    "Tensor.logsumexp": "log(sum(exp(x))) over `axis`, computed without overflow.",
    "Tensor.softmax": "exp(x) / sum(exp(x)) over `axis`, computed without overflow.",
    "Tensor.log_softmax": "log(softmax(x)) over `axis`, computed without overflow.",
    "Tensor.argmax": "Index of the maximum over `axis` (an integer tensor, no gradient).",
    "Tensor.argmin": "Index of the minimum over `axis` (an integer tensor, no gradient).",
    "Tensor.reshape": "The same elements in a new shape; one size may be -1. reshape(2, 3) or reshape((2, 3)).",
    "Tensor.swapaxes": "Exchange two axes.",
    "Tensor.expand_dims": "Insert an axis of size 1 at `axis`.",
    "Tensor.squeeze": "Remove axes of size 1 (all of them, or those in `axis`).",
    "Tensor.broadcast_to": "Broadcast to a larger shape without copying; the gradient is summed back.",
    "tinygrad_cnn.zeros": "A tensor of zeros: zeros(2, 3) or zeros((2, 3)).",
    "tinygrad_cnn.ones": "A tensor of ones: ones(2, 3) or ones((2, 3)).",
    "tinygrad_cnn.full": "A tensor of `shape` filled with `fill_value`.",
    "tinygrad_cnn.zeros_like": "Zeros of `t`'s shape, dtype and device.",
    "tinygrad_cnn.ones_like": "Ones of `t`'s shape, dtype and device.",
    "tinygrad_cnn.arange": "Evenly spaced values in [start, stop), as numpy.arange (int64 for int arguments).",
    "tinygrad_cnn.eye": "The n x m identity matrix.",
    "tinygrad_cnn.concatenate": "Join tensors along an existing axis (dtypes are promoted).",
    "tinygrad_cnn.stack": "Join tensors of one shape along a new axis.",
    "tinygrad_cnn.maximum": "Elementwise maximum of two operands, at least one a Tensor.",
    "tinygrad_cnn.minimum": "Elementwise minimum of two operands, at least one a Tensor.",
    "tinygrad_cnn.float32": "numpy.dtype('float32'), the default float type.",
    "tinygrad_cnn.float64": "numpy.dtype('float64').",
    "tinygrad_cnn.nn.ReLU": "relu as a layer.",
    "tinygrad_cnn.nn.Sigmoid": "sigmoid as a layer; `Sequential.logits` strips it when it is last.",
    "tinygrad_cnn.nn.Tanh": "tanh as a layer.",
    "tinygrad_cnn.nn.ACTIVATIONS": "The activations known by name (`activation='relu'`).",
    "tinygrad_cnn.nn.functional.relu": "max(x, 0), elementwise.",
    "tinygrad_cnn.nn.functional.sigmoid": "1 / (1 + exp(-x)), elementwise.",
    "tinygrad_cnn.nn.functional.tanh": "tanh(x), elementwise.",
    "tinygrad_cnn.nn.functional.softmax": "exp(x) / sum(exp(x)) over `axis`.",
    "tinygrad_cnn.nn.functional.log_softmax": "log(softmax(x)) over `axis`, computed without overflow.",
    "tinygrad_cnn.nn.init.zeros": "All zeros (the default bias initialiser).",
    "tinygrad_cnn.nn.init.ones": "All ones.",
    "Module.modules": "Every module, self first (see named_modules).",
    "Module.named_buffers": "(dotted name, tensor) of every buffer declared with register_buffer().",
    "Module.eval": "Switch to evaluation mode: `train(False)`.",
    "Module.zero_grad": "Clear `.grad` of every parameter.",
    "Sequential.forward": "Apply the layers in order.",
    "Layer.default_name": "The base of the names Sequential gives to unnamed layers.",
    "Layer.forward": "Compute the output for a batch (called by `layer(x)`, after build and shape checks).",
    "Optimizer.zero_grad": "Clear `.grad` of every parameter.",
    "Optimizer.step": "Update every parameter that has a gradient.",
    "Optimizer.state_names": "Names of the per-parameter state arrays (e.g. 'exp_avg').",
    "LRScheduler.lr_at": "The learning rate for an epoch count (defined by each schedule).",
    "Conv2D.pre_activation": "The convolution plus bias, before the activation (Sequential.logits uses it).",
    "Conv2D.forward": "activation(pre_activation(x)).",
    "Dense.pre_activation": "x @ weight.T + bias, before the activation (Sequential.logits uses it).",
    "Dense.forward": "activation(pre_activation(x)).",
    "MaxPool2D.forward": "Max over each window of x (N, C, H, W).",
    "AvgPool2D.forward": "Mean over each window of x (N, C, H, W).",
    "Flatten.forward": "x.flatten(1).",
    "ReLU.fn": "The function the layer applies (nn.functional.relu).",
    "Sigmoid.fn": "The function the layer applies (nn.functional.sigmoid).",
    "Tanh.fn": "The function the layer applies (nn.functional.tanh).",
    "ReLU.forward": "relu(x), elementwise.",
    "Sigmoid.forward": "sigmoid(x), elementwise.",
    "Tanh.forward": "tanh(x), elementwise.",
    "Softmax.forward": "softmax(x) over `axis`.",
    "Dropout.forward": "Dropout while training; the identity in eval mode.",
    "LRScheduler.step": "Count one more epoch and set optimizer.lr (call once per epoch, after its updates).",
    "LRScheduler.state_dict": "{'base_lr', 'last_epoch'}, for a checkpoint.",
    "LRScheduler.load_state_dict": "Restore what state_dict() returned, and set optimizer.lr to match.",
    "StepLR.lr_at": "The learning rate after `epoch` epochs (the formula above).",
    "CosineAnnealingLR.lr_at": "The learning rate after `epoch` epochs (the formula above).",
    "tinygrad_cnn.datasets.mnist.INFO": "Name, authors and license of the dataset.",
    "tinygrad_cnn.device.DEFAULT_DEVICE_ENV": "The environment variable that names the default device "
                                              "(used wherever device=None).",
    "tinygrad_cnn.ops.Add": "a + b.",
    "tinygrad_cnn.ops.Sub": "a - b.",
    "tinygrad_cnn.ops.Mul": "a * b.",
    "tinygrad_cnn.ops.Div": "a / b.",
    "tinygrad_cnn.ops.Neg": "-x.",
    "tinygrad_cnn.ops.Exp": "exp(x).",
    "tinygrad_cnn.ops.Log": "Natural logarithm.",
    "tinygrad_cnn.ops.Sqrt": "Square root.",
    "tinygrad_cnn.ops.Abs": "|x|; the gradient is sign(x), 0 at 0.",
    "tinygrad_cnn.ops.Tanh": "tanh(x).",
    "tinygrad_cnn.ops.ReLU": "max(x, 0); the gradient is 0 at 0.",
    "tinygrad_cnn.ops.Sum": "Sum over `axis`; the gradient is broadcast back.",
    "tinygrad_cnn.ops.Reshape": "A new shape; the gradient is reshaped back.",
    "tinygrad_cnn.ops.Permute": "Reorder the axes; the gradient is permuted back.",
    "tinygrad_cnn.ops.Concatenate": "Join arrays along `axis`; the gradient is split.",
    "Function.forward": "Compute the output array from the input arrays (override this).",
    "Function.backward": "Map the output's gradient to one gradient (or None) per input (override this).",
    "Module.training": "True in training mode (dropout active), False after eval().",
    "Module.device": "The device of the module's tensors (None until built or moved).",
    "Module.forward": "Compute the output (override this); `module(x)` calls it.",
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
                  ("state", "One dict of state arrays per parameter (momentum, Adam moments, step count)."),
                  ("lr", "The learning rate; schedules change it between epochs.")],
    "LRScheduler": [("optimizer", "The optimizer whose `lr` it sets."),
                    ("base_lr", "The optimizer's learning rate when the schedule was created."),
                    ("last_epoch", "How many times step() was called.")],
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
    return doc or ""


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
    _paragraph(lines, FILL_INS.get(qualified) or (inspect.getdoc(cls) if cls.__doc__ else ""))


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
