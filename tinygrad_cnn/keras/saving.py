"""`.keras` files, Keras 3's format, both ways: model.save("m.keras") writes one that keras.models.load_model
opens, and load_model reads one that Keras 3 wrote, for the layers both have.

A .keras file is a zip of config.json (the model's architecture: each layer's class and arguments),
metadata.json, and model.weights.h5 (HDF5: each layer's weights under layers/<name>/vars/<i>, in Keras'
layouts: a conv kernel (KH, KW, C, filters), a dense kernel (in, units)). HDF5 needs h5py, an optional
extra (`pip install 'tinygrad_cnn[h5]'`); nothing else here does."""
import datetime
import inspect
import io
import json
import os
import re
import warnings
import zipfile

import numpy

from .. import nn
from ..checkpoint import atomic_write
from ..nn.layers import Activated, Elementwise
from .layers import to_keras_layout
from .offered import not_offered
from .registry import (CustomObjectScope, custom_object_scope, get_custom_objects, get_registered_name,
                       get_registered_object, register_keras_serializable)

CONFIG, METADATA, WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
FORMAT_VERSION = "3.0.0"  # NOTE: the Keras 3 format these files follow (Keras reads but does not check it)


class KerasFileError(ValueError):
    """A .keras file that cannot be read or written here; the message names the file and the problem."""


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError(".keras files keep their weights in HDF5, which needs h5py: "
                          "pip install 'tinygrad_cnn[h5]' (or pip install h5py)") from None
    return h5py


def _dtype_policy(dtype):
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": numpy.dtype(dtype).name},
            "registered_name": None}


def _initializer(name):
    return {"module": "keras.initializers", "class_name": name, "config": {}, "registered_name": None}


# Keras' class names of the initializers offered here (nn.init's functions)
KERAS_INITIALIZERS = {"glorot_uniform": "GlorotUniform", "he_uniform": "HeUniform", "he_normal": "HeNormal",
                      "zeros": "Zeros", "ones": "Ones"}


_DEFAULT_INITIALIZERS = {"kernel_initializer": "GlorotUniform", "bias_initializer": "Zeros",
                         "beta_initializer": "Zeros", "gamma_initializer": "Ones", "moving_mean_initializer": "Zeros",
                         "moving_variance_initializer": "Ones"}


def _initializer_of(layer, attribute, strict=True):
    """Keras' config of the initializer a layer was given (it was always written as the default, so
    clone_model and from_config of Dense(kernel_initializer='he_normal') drew glorot_uniform weights).
    One without a Keras name (a callable) is an error when `strict` (a config that draws weights: get_config,
    to_json); a file that holds the weights (model.save, save_weights) gets Keras' default, which no load uses."""
    fn = getattr(layer, attribute)
    fn = getattr(fn, "func", fn)  # NOTE: init.get(name, generator) is a partial; the generator is not kept
    name = getattr(fn, "__name__", None)
    if nn.init.INITIALIZERS.get(name) is not fn:
        if not strict:
            return _initializer(_DEFAULT_INITIALIZERS[attribute])
        raise KerasFileError(f"layer {layer.name!r}: {attribute} {fn!r} has no Keras name; give it by name "
                             f"({', '.join(KERAS_INITIALIZERS)}) to save or copy the layer's config")
    return _initializer(KERAS_INITIALIZERS[name])


def _initializers_from(config, keys, where, fresh):
    """Our initializer names for the Keras initializer configs under `keys` (Keras' {'class_name':
    'HeNormal', ...} or a name). With `fresh` (from_config, clone_model, model_from_json: the weights are
    drawn) one not offered here is an error; loading a file, whose weights follow, it is left at the default."""
    names = {keras_name: name for name, keras_name in KERAS_INITIALIZERS.items()}
    found = {}
    for key in keys:
        value = config.get(key)
        if value is None:
            continue
        keras_name = value.get("class_name") if isinstance(value, dict) else value
        name = names.get(keras_name, keras_name if keras_name in KERAS_INITIALIZERS else None)
        if name is not None:
            found[key] = name
        elif fresh:
            raise KerasFileError(f"{where}: {key} {keras_name!r} is not offered here (offered: "
                                 f"{', '.join(KERAS_INITIALIZERS.values())})")
    return found


def _layer_entry(class_name, config, input_shape=None):
    entry = {"module": "keras.layers", "class_name": class_name, "config": config, "registered_name": None}
    if input_shape is not None:
        entry["build_config"] = {"input_shape": [None, *input_shape]}
    return entry


def _activation_name(layer):
    name = layer.activation_name
    if name is not None and name not in ("relu", "sigmoid", "tanh", "softmax"):
        raise KerasFileError(f"layer {layer.name!r}: activation {name!r} has no Keras name")
    return name or "linear"


# ---------------------------------------------------------------- writing

def _snake(class_name):
    """Keras' snake_case of a class name (MaxPooling2D -> max_pooling2d, ReLU -> re_lu)."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _paths(class_names):
    """Where Keras keeps each layer's weights: layers/<snake_case class name>, _1, _2, ... for repeats
    (NOTE: by class and position, not by the layer's name, which Keras does not trust to be reproducible)."""
    used, paths = {}, []
    for kind in class_names:
        base = _snake(kind)
        used[base] = used.get(base, -1) + 1
        paths.append(f"{base}_{used[base]}" if used[base] else base)
    return paths


def _arrays(layer):
    """The layer's weights in Keras' order and layouts (a conv kernel (KH, KW, C, O), a dense one (inputs,
    units)); none before it is built."""
    return [to_keras_layout(layer, name, value) for name, value in layer.state_dict().items()]


def _describe(layer, shape, strict=True):
    """(Keras class name, config, [weights in Keras' layouts]) of one of our layers."""
    from .layers import Layer
    cls = type(layer)
    if not isinstance(layer, Layer) and not cls.__module__.startswith("tinygrad_cnn."):
        # NOTE: it was written as its built-in base, so it loaded as a plain Dense without your changes
        base = next(c.__name__ for c in cls.__mro__ if c.__module__.startswith("tinygrad_cnn."))
        raise KerasFileError(f"layer {layer.name!r}: your class {cls.__name__} subclasses the built-in {base}, which "
                             f"is not saved here (it would load as a plain {base}); subclass keras.layers.Layer and "
                             f"hold the {base} inside it (self.inner = {base}(...)), which saves as Keras does")
    base = {"name": layer.name, "trainable": bool(getattr(layer, "trainable", True)),
            "dtype": _dtype_policy(getattr(layer, "dtype", "float32"))}
    fmt = getattr(layer, "data_format", None)
    if isinstance(layer, nn.Conv2D):
        if not isinstance(layer.padding, str):
            raise KerasFileError(f"layer {layer.name!r}: explicit padding {layer.padding} has no Keras equivalent "
                                 f"(Keras' Conv2D pads 'valid' or 'same')")
        config = {**base, "filters": layer.filters, "kernel_size": list(layer.kernel_size),
                  "strides": list(layer.strides), "padding": layer.padding, "data_format": fmt,
                  "dilation_rate": list(layer.dilation_rate), "groups": 1, "activation": _activation_name(layer),
                  "use_bias": layer.use_bias,
                  "kernel_initializer": _initializer_of(layer, "kernel_initializer", strict),
                  "bias_initializer": _initializer_of(layer, "bias_initializer", strict),
                  "kernel_regularizer": None, "bias_regularizer": None,
                  "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None}
        return "Conv2D", config, _arrays(layer)
    if isinstance(layer, nn.Dense):
        config = {**base, "units": layer.units, "activation": _activation_name(layer), "use_bias": layer.use_bias,
                  "kernel_initializer": _initializer_of(layer, "kernel_initializer", strict),
                  "bias_initializer": _initializer_of(layer, "bias_initializer", strict),
                  "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
                  "kernel_constraint": None, "bias_constraint": None}
        return "Dense", config, _arrays(layer)
    if isinstance(layer, (nn.MaxPool2D, nn.AvgPool2D)):
        kind = "MaxPooling2D" if isinstance(layer, nn.MaxPool2D) else "AveragePooling2D"
        return kind, {**base, "pool_size": list(layer.pool_size), "padding": layer.padding,
                      "strides": list(layer.strides), "data_format": fmt}, []
    if isinstance(layer, nn.Flatten):
        return "Flatten", {**base, "data_format": layer.data_format or "channels_last"}, []
    if isinstance(layer, nn.Dropout):
        return "Dropout", {**base, "rate": layer.rate, "seed": None, "noise_shape": None}, []
    if isinstance(layer, nn.BatchNormalization):
        config = {**base, "axis": layer.axis, "momentum": layer.decay, "epsilon": layer.epsilon,
                  "center": layer.center, "scale": layer.scale,
                  **{key: _initializer_of(layer, key, strict) for key in _BN_INITIALIZERS},
                  "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
                  "gamma_constraint": None, "synchronized": False}
        return "BatchNormalization", config, _arrays(layer)
    if isinstance(layer, (nn.GlobalAveragePooling2D, nn.GlobalMaxPooling2D)):
        kind = "GlobalAveragePooling2D" if isinstance(layer, nn.GlobalAveragePooling2D) else "GlobalMaxPooling2D"
        return kind, {**base, "data_format": fmt, "keepdims": layer.keepdims}, []
    if isinstance(layer, nn.Reshape):
        return "Reshape", {**base, "target_shape": list(layer.target_shape)}, []
    if isinstance(layer, nn.Rescaling):
        return "Rescaling", {**base, "scale": layer.scale, "offset": layer.offset}, []
    if isinstance(layer, nn.ReLU):
        return "ReLU", {**base, "max_value": None, "negative_slope": 0.0, "threshold": 0.0}, []
    if isinstance(layer, nn.Softmax):
        return "Softmax", {**base, "axis": layer.axis}, []
    if isinstance(layer, Elementwise):  # Sigmoid, Tanh
        return "Activation", {**base, "activation": layer.default_name}, []
    if isinstance(layer, Activated) and not layer.parameters():  # keras.layers.Activation
        return "Activation", {**base, "activation": _activation_name(layer)}, []
    if isinstance(layer, Layer):
        return _describe_own(layer)
    raise KerasFileError(f"layer {layer.name!r}: {type(layer).__name__} has no Keras equivalent here")


def _describe_own(layer):
    """(class name, get_config(), weights) of your own keras.layers.Layer, as Keras writes one: its own weights
    trainable first (Keras' order), the config as get_config() gives it, which must be JSON (str, numbers,
    bools, None, lists and dicts of them)."""
    kind = type(layer).__name__
    listed = [name for name, module in layer.named_children() if "." in name and module.state_dict()]
    if listed:
        raise KerasFileError(f"layer {layer.name!r}: your own layer {kind} holds layers with weights in a list "
                             f"({', '.join(listed)}), which Keras files differently; give each its own attribute "
                             f"(self.first = ..., self.second = ...) to save it")
    config = layer.get_config()
    if not isinstance(config, dict):
        raise KerasFileError(f"layer {layer.name!r}: {kind}.get_config() must return a dict, got "
                             f"{type(config).__name__}")
    try:
        config = json.loads(json.dumps(config, default=_json_default))
    except TypeError as e:
        raise KerasFileError(f"layer {layer.name!r}: {kind}.get_config() holds {e}; give plain values (str, "
                             f"numbers, bools, None, lists, dicts)") from None
    return kind, config, _arrays(layer)


def _json_default(value):
    if isinstance(value, (numpy.generic, numpy.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} {value!r}, which JSON cannot hold")


def _own_entry(entry, cls):
    """A config entry naming your own class as Keras does: its module (None for __main__'s) and registered name."""
    from .registry import get_registered_name, module_name
    entry.update(module=module_name(cls), registered_name=get_registered_name(cls))
    return entry


def _keras_layers(model):
    """model.layers without a functional model's InputLayer: the files and configs describe the input apart."""
    from .layers import InputLayer
    return [layer for layer in model.layers if not isinstance(layer, InputLayer)]


def model_config(model, strict=True):
    """Keras 3's config of a Sequential or a functional chain: its layers' configs, the input shape once known;
    the config.json of a .keras file, and get_config()'s "config" part."""
    from .layers import Layer
    layers, shape = [], tuple(model.built_input_shape) if model.built else None
    if shape is not None:
        layers.append(_layer_entry("InputLayer", {"batch_shape": [None, *shape], "dtype": "float32", "sparse": False,
                                                  "ragged": False, "name": "input_layer", "optional": False}))
    for layer in _keras_layers(model):
        kind, config, _ = _describe(layer, shape, strict)
        layers.append(_layer_entry(kind, config, shape))
        if isinstance(layer, Layer):
            _own_entry(layers[-1], type(layer))
        shape = None if shape is None else layer.compute_output_shape(shape)
    inner = {"name": model.name, "trainable": getattr(model, "trainable", True), "dtype": _dtype_policy("float32"),
             "layers": layers}
    config = {"module": "keras", "class_name": "Sequential", "config": inner, "registered_name": None}
    if model.built:
        inner["build_input_shape"] = [None, *model.built_input_shape]
        config["build_config"] = {"input_shape": [None, *model.built_input_shape]}
    from .layers import InputLayer
    if model.layers and isinstance(model.layers[0], InputLayer):
        return _functional_config(model, config)
    return config


def _functional_config(model, config):
    """A functional chain's config as Keras 3 writes it ("Functional": each layer names the one feeding it),
    made from its Sequential-shaped config, so that it loads back (here and in Keras) as a functional model."""
    inner, previous = dict(config["config"]), model.layers[0].name
    entries = [dict(entry) for entry in inner.pop("layers")]
    inner.pop("build_input_shape")
    entries[0]["config"] = {**entries[0]["config"], "name": previous}
    entries[0].update(name=previous, inbound_nodes=[])
    for entry in entries[1:]:
        fed = {"shape": entry["build_config"]["input_shape"], "dtype": "float32", "keras_history": [previous, 0, 0]}
        previous = entry["config"]["name"]
        entry.update(name=previous, inbound_nodes=[{"args": [{"class_name": "__keras_tensor__", "config": fed}],
                                                    "kwargs": {}}])
    inner.update(layers=entries, input_layers=[entries[0]["name"], 0, 0], output_layers=[previous, 0, 0])
    return {"module": "keras.src.models.functional", "class_name": "Functional", "config": inner,
            "registered_name": "Functional", "build_config": {"input_shape": None}}


def in_memory(config):
    """A config as Keras' get_config() gives it: shapes and sizes as tuples ((3, 3), (None, 28, 28, 1)), where
    the JSON of a .keras file has lists; lists of layer entries stay lists."""
    if isinstance(config, dict):
        return {key: in_memory(value) for key, value in config.items()}
    if isinstance(config, list):
        items = [in_memory(item) for item in config]
        return items if any(isinstance(item, dict) for item in items) else tuple(items)
    return config


def layer_config(layer):
    """Keras' get_config() of one of our layers (what a .keras file holds for it, with Keras' tuples)."""
    return in_memory(_describe(layer, None)[1])


def layer_from_config(kind, config, where):
    """A layer of Keras class `kind` from its config (Keras' Layer.from_config), frozen where it says so."""
    try:
        layer, _ = _build_layer({"class_name": kind, "config": config}, where)
    except KeyError as e:
        raise ValueError(f"{where}: the config has no {e.args[0]!r}, which a {kind} needs") from None
    if config.get("trainable", True) is False:
        layer.trainable = False
    return layer


def model_from_config(config, where, fresh=True):
    """(a new Sequential or, for a functional chain, keras.Model; its layers, their weight converters, their
    config entries) from Keras' model config, with fresh weights and the trainable flags it gives."""
    from .models import Sequential
    from .layers import Input
    shape, entries = _chain_of(config, where)
    layers, convert = [], {}
    for position, entry in enumerate(entries):
        layer, to_ours = _build_layer(entry, f"{where}: layer {position} ({entry.get('config', {}).get('name')!r})",
                                      fresh)
        layers.append(layer)
        convert[layer.name] = to_ours
    if config.get("class_name") == "Functional":  # NOTE: a keras.Model again, so model.layers lists its InputLayer
        from .functional import Model
        inputs = [e for e in config["config"]["layers"] if e.get("class_name") == "InputLayer"][0]
        x = symbolic = Input(shape, name=inputs.get("config", {}).get("name"))
        for layer in layers:
            x = layer(x)
        model = Model(symbolic, x, name=config.get("config", {}).get("name"))
    else:
        model = Sequential(name=config.get("config", {}).get("name"))
        if shape is not None:
            model.add(Input(shape))
        for layer in layers:
            model.add(layer)
    # NOTE: frozen layers come back frozen (a fine-tuning setup saved mid-way goes on as it was)
    if config.get("config", {}).get("trainable", True) is False:
        model.trainable = False
    for layer, entry in zip(layers, entries):
        if entry.get("config", {}).get("trainable", True) is False:
            layer.trainable = False
    return model, layers, convert, entries


def save_model(model, path):
    """Write a built Sequential (or functional keras.Model) to `path` as a Keras 3 .keras file, atomically."""
    h5py = _h5py()
    if not isinstance(model, nn.Sequential) or getattr(model, "_subclassed", False):
        raise KerasFileError(f"{os.fspath(path)!r}: only a Sequential or a functional keras.Model is saved as "
                             f".keras here, got {type(model).__name__}")
    if getattr(model, "is_graph", False):
        raise KerasFileError(f"{os.fspath(path)!r}: a functional model with branches (Add, Concatenate) is not saved "
                             f"as .keras here, only chains of layers; save its weights with model.save_weights")
    if not model.built:
        raise KerasFileError(f"{os.fspath(path)!r}: the model is not built yet, so its input shape is unknown; "
                             f"give it an Input or input_shape=, or call it on a batch first")
    layers = _keras_layers(model)
    config, kinds = model_config(model, strict=False), [_describe(layer, None, False)[0] for layer in layers]
    compile_config = _compile_config(model)
    if compile_config is not None:
        config["compile_config"] = compile_config
    h5 = _weights_file(model.name, kinds, layers)
    metadata = {"keras_version": FORMAT_VERSION, "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
                "producer": "tinygrad_cnn"}

    def write(f):
        with zipfile.ZipFile(f, "w") as z:
            z.writestr(METADATA, json.dumps(metadata))
            z.writestr(CONFIG, json.dumps(config))
            z.writestr(WEIGHTS, h5)
    atomic_write(path, write)


def _tree(layer):
    """(the layer's own weights in Keras' layouts and order, [(attribute, tree) of each layer inside it]): your
    own layer keeps its own weights in vars/ and each inner layer's under the attribute's name, as Keras."""
    from .layers import Layer
    if not isinstance(layer, Layer):
        return _arrays(layer), []
    own = [to_keras_layout(layer, name, value) for name, value in layer.state_dict().items() if "." not in name]
    return own, [(name, _tree(child)) for name, child in layer.named_children() if child.state_dict()]


def _write_tree(entry, name, tree):
    arrays, children = tree
    group = entry.create_group("vars")
    group.attrs["name"] = name
    for i, array in enumerate(arrays):
        group.create_dataset(str(i), data=numpy.array(array, order="C"))  # NOTE: a 0-d one stays 0-d
    for attribute, child in children:
        _write_tree(entry.create_group(attribute), attribute, child)


def _read_tree(entry, layer, prefix, where, path):
    """[(state name, Keras-layout array)] of your own layer (and the layers inside it) from its group."""
    own = [name for name, _ in layer._named_tensors() if "." not in name]
    group = None if entry is None else entry.get("vars")
    arrays = [] if group is None else [numpy.asarray(group[str(k)]) for k in range(len(group))]
    if len(arrays) != len(own):
        raise KerasFileError(f"{where}: layer {layer.name!r} has {len(own)} weight arrays of its own here, "
                             f"{len(arrays)} in the file at {path}/vars")
    pairs = [(prefix + name, array) for name, array in zip(own, arrays)]
    for attribute, child in layer.named_children():
        if child.state_dict():
            pairs += _read_tree(None if entry is None else entry.get(attribute), child, f"{prefix}{attribute}.",
                                where, f"{path}/{attribute}")
    return pairs


def _weights_file(model_name, kinds, layers):
    """The bytes of Keras 3's weights HDF5 (model.weights.h5 in a .keras file, or a .weights.h5 file): each
    layer's arrays (Keras' layouts) under layers/<keras path>/vars/<i>; kinds are the layers' Keras classes."""
    h5 = io.BytesIO()
    with _h5py().File(h5, "w") as f:
        f.create_group("vars").attrs["name"] = model_name
        group = f.create_group("layers")
        for where, layer in zip(_paths(kinds), layers):
            _write_tree(group.create_group(where), layer.name, _tree(layer))
    return h5.getvalue()


def _chain_layers(model, path, action):
    """The layers of a model whose weights go to or come from a Keras file, with their Keras classes;
    KerasFileError naming the alternative for a model that is no chain of layers."""
    if not isinstance(model, nn.Sequential) or getattr(model, "_subclassed", False) or getattr(model, "is_graph", False):
        raise KerasFileError(f"{os.fspath(path)!r}: only a Sequential or a functional chain of layers {action} a "
                             f"Keras .weights.h5 file here; use a .safetensors name (the project's own format)")
    layers = _keras_layers(model)
    return layers, [_describe(layer, None, False)[0] for layer in layers]


def save_weights(model, path):
    """Write Keras 3's .weights.h5 file (what Keras' model.save_weights writes and load_weights reads), atomically."""
    layers, kinds = _chain_layers(model, path, "writes")
    if not model.built:  # it wrote a file of no weights, which no built model could load
        raise KerasFileError(f"{os.fspath(path)}: the model is not built, so it has no weights to save; build it "
                             f"first (an Input, input_shape=, or a call on a batch), as Keras requires")
    data = _weights_file(model.name, kinds, layers)
    atomic_write(path, lambda f: f.write(data))


def load_weights(model, path):
    """Read a Keras 3 .weights.h5 file (Keras' model.save_weights, or save_weights here) into a built model of
    the same layers; every array is checked before any is written."""
    from .layers import Layer, from_keras_layouts
    where = os.fspath(path)
    layers, kinds = _chain_layers(model, path, "reads")
    if not model.built:
        raise KerasFileError(f"{where}: build the model first (an Input, input_shape=, or a call on a batch)")
    if not os.path.isfile(where):
        raise KerasFileError(f"{where}: no such file")
    pairs = []
    with _h5py().File(where, "r") as f:
        root = f.get("layers")
        for i, (layer, path_in_file) in enumerate(zip(layers, _paths(kinds))):
            position = next(k for k, each in enumerate(model.layers) if each is layer)
            if isinstance(layer, Layer):
                pairs += _read_tree(None if root is None else root.get(path_in_file), layer, f"layers.{position}.",
                                    where, f"layers/{path_in_file}")
                continue
            own = [name for name, _ in model._named_tensors() if name.startswith(f"layers.{position}.")]
            group = None if root is None else root.get(f"{path_in_file}/vars")
            arrays = [] if group is None else [numpy.asarray(group[str(k)]) for k in range(len(group))]
            if len(arrays) != len(own):
                raise KerasFileError(f"{where}: layer {layer.name!r} ({kinds[i]}) has {len(own)} weight arrays here, "
                                     f"{len(arrays)} in the file at layers/{path_in_file}")
            pairs += list(zip(own, arrays))
    try:
        model.load_state_dict(from_keras_layouts(model, pairs, where))
    except ValueError as e:
        raise KerasFileError(str(e)) from None


# ---------------------------------------------------------------- reading

def _activation(config, where):
    name = config.get("activation", "linear")
    if isinstance(name, dict):
        name = name.get("config", {}).get("name") or name.get("class_name")
    if name not in ("linear", "relu", "sigmoid", "tanh", "softmax", None):
        raise KerasFileError(f"{where}: activation {name!r} is not supported here (relu, sigmoid, tanh, softmax, "
                             f"linear)")
    return None if name == "linear" else name


def _check_unsupported(config, where, keys, defaults=(None, False, 0.0, 1)):
    for key in keys:
        if config.get(key) not in defaults:
            raise KerasFileError(f"{where}: {key}={config[key]!r} is not supported here")


_DROPPED = {"Conv2D": ("kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
                       "bias_constraint"),
            "BatchNormalization": ("beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint"),
            "Dropout": ("noise_shape",)}
_DROPPED["Dense"] = _DROPPED["Conv2D"]


def _check_training_only(kind, config, where, fresh):
    """Regularizers, constraints and Dropout's noise_shape (what only training uses) are not offered here; they
    were dropped silently. With `fresh` (from_config, clone_model, model_from_json) an error; loading a file,
    a warning. NOTE: the loaded model predicts as Keras', so only its training would differ."""
    given = [key for key in _DROPPED.get(kind, ()) if config.get(key) is not None]
    if not given:
        return
    message = f"{where}: {', '.join(given)} {'is' if len(given) == 1 else 'are'} not supported here"
    if fresh:
        raise KerasFileError(message)
    warnings.warn(f"{message} and left out: the model predicts as Keras', but training it here would differ",
                  stacklevel=5)


_BN_INITIALIZERS = ("beta_initializer", "gamma_initializer", "moving_mean_initializer",
                    "moving_variance_initializer")


def _build_layer(entry, where, fresh=True):
    """Our keras layer for one config.json layer entry, and a function putting its Keras weights in."""
    from . import layers as L
    kind, config = entry.get("class_name"), dict(entry.get("config") or {})
    name = config.get("name")
    _check_training_only(kind, config, where, fresh)
    if kind == "Conv2D":
        _check_unsupported(config, where, ("groups",), (None, 1))
        layer = L.Conv2D(config["filters"], tuple(config["kernel_size"]), tuple(config.get("strides", (1, 1))),
                         config.get("padding", "valid"), data_format=config.get("data_format"),
                         dilation_rate=tuple(config.get("dilation_rate", (1, 1))),
                         activation=_activation(config, where), use_bias=config.get("use_bias", True), name=name,
                         **_initializers_from(config, ("kernel_initializer", "bias_initializer"), where, fresh))
        return layer, lambda w: [w[0].transpose(3, 2, 0, 1)] + w[1:]
    if kind == "Dense":
        layer = L.Dense(config["units"], activation=_activation(config, where), use_bias=config.get("use_bias", True),
                        name=name, **_initializers_from(config, ("kernel_initializer", "bias_initializer"), where, fresh))
        return layer, lambda w: [w[0].T] + w[1:]
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        cls = L.MaxPooling2D if kind == "MaxPooling2D" else L.AveragePooling2D
        strides = config.get("strides")
        return cls(tuple(config.get("pool_size", (2, 2))), None if strides is None else tuple(strides),
                   config.get("padding", "valid"), config.get("data_format"), name=name), None
    if kind == "Flatten":
        return L.Flatten(config.get("data_format"), name=name), None
    if kind == "Dropout":
        return L.Dropout(config["rate"], name=name), None
    if kind == "BatchNormalization":
        _check_unsupported(config, where, ("renorm",))
        axis = config.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        layer = L.BatchNormalization(axis, config.get("momentum", 0.99), config.get("epsilon", 1e-3),
                                     config.get("center", True), config.get("scale", True), name=name,
                                     **_initializers_from(config, _BN_INITIALIZERS, where, fresh))
        return layer, None
    if kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        cls = getattr(L, kind)
        return cls(config.get("data_format"), config.get("keepdims", False), name=name), None
    if kind == "Reshape":
        return L.Reshape(tuple(config["target_shape"]), name=name), None
    if kind == "Rescaling":
        if not isinstance(config.get("scale"), (int, float)) or not isinstance(config.get("offset", 0.0), (int, float)):
            raise KerasFileError(f"{where}: Rescaling with per-channel scale or offset is not supported here")
        return L.Rescaling(config["scale"], config.get("offset", 0.0), name=name), None
    if kind == "ReLU":
        _check_unsupported(config, where, ("max_value", "negative_slope", "threshold"), (None, 0, 0.0))
        return L.ReLU(name=name), None
    if kind == "Softmax":
        return L.Softmax(config.get("axis", -1), name=name), None
    if kind == "Activation":
        return L.Activation(_activation(config, where) or "linear", name=name), None
    if _is_own(entry):
        return _own_layer(entry, config, where), None
    raise KerasFileError(f"{where}: Keras layer {kind!r} is not supported here (supported: Conv2D, Dense, "
                         f"MaxPooling2D, AveragePooling2D, Flatten, Dropout, BatchNormalization, "
                         f"GlobalAveragePooling2D, GlobalMaxPooling2D, Reshape, Rescaling, ReLU, Softmax, Activation)")


def _is_own(entry):
    """Whether a config entry names your own class: its module is outside Keras (None for __main__'s). NOTE: Keras'
    own classes may carry a registered name too ('Functional'), and Keras 2's entries name no module."""
    module = entry.get("module", "keras")
    return not (module == "keras" or str(module).startswith("keras."))


def _own_layer(entry, config, where):
    """Your own layer from its entry: the class found by its registered name, then its from_config(config)."""
    from .registry import find
    kind = entry.get("class_name")
    try:
        cls = find(kind, entry.get("registered_name"), "layer")
    except LookupError as e:
        raise KerasFileError(f"{where}: {e}") from None
    try:
        layer = cls.from_config(config)
    except TypeError as e:
        raise KerasFileError(f"{where}: {kind}.from_config(config) failed ({e}); a class whose __init__ takes "
                             f"arguments needs a get_config() that returns them") from None
    if not isinstance(layer, nn.Layer):
        raise KerasFileError(f"{where}: {kind}.from_config gave {type(layer).__name__}, not a layer")
    return layer


def _input_shape(entry, where):
    config = entry.get("config", {})
    shape = config.get("batch_shape") or config.get("batch_input_shape")
    if not shape or any(s is None for s in shape[1:]):
        raise KerasFileError(f"{where}: the input shape {shape} has unknown sizes; only fixed shapes are supported")
    return tuple(shape[1:])


def _chain_of(config, where):
    """(input shape, layer entries in order) of a Sequential or a chain-shaped Functional config."""
    kind, inner = config.get("class_name"), config.get("config", {})
    entries = list(inner.get("layers", []))
    if kind == "Sequential":
        shape = None
        if entries and entries[0].get("class_name") == "InputLayer":
            shape = _input_shape(entries.pop(0), where)
        elif inner.get("build_input_shape"):
            shape = tuple(inner["build_input_shape"][1:])
        return shape, entries
    if kind == "Functional":
        inputs = [e for e in entries if e.get("class_name") == "InputLayer"]
        outputs = inner.get("output_layers", [])
        if len(inputs) != 1 or (outputs and isinstance(outputs[0], list) and len(outputs) > 1):
            raise KerasFileError(f"{where}: a functional model with several inputs or outputs is not supported here")
        previous, ordered = inputs[0]["config"]["name"], []
        for entry in entries:
            if entry is inputs[0]:
                continue
            nodes = entry.get("inbound_nodes", [])
            args = nodes[0].get("args", []) if len(nodes) == 1 and isinstance(nodes[0], dict) else None
            history = args[0].get("config", {}).get("keras_history", [None])[0] if args and len(args) == 1 \
                and isinstance(args[0], dict) else None
            if history != previous:
                raise KerasFileError(f"{where}: layer {entry.get('name')!r} is not fed by the layer before it; only "
                                     f"functional models that are a chain of layers are supported here")
            ordered.append(entry)
            previous = entry["config"]["name"]
        return _input_shape(inputs[0], where), ordered
    raise KerasFileError(f"{where}: a {kind!r} model is not supported here (Sequential or a functional chain)")


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """A tinygrad_cnn.keras model from a Keras 3 .keras file (Sequential, or a functional model that is a
    chain of layers), with its weights; compiled from the file's compile_config where it names a loss and
    an optimizer known here. A layer with no equivalent here raises KerasFileError naming it. Your own
    layers, metrics and metric functions are found as Keras finds them: registered with
    keras.saving.register_keras_serializable, or in custom_objects={'registered name': class}."""
    from .registry import loading
    with loading(custom_objects):
        return _load_model(filepath, compile)


def _load_model(filepath, compile):
    h5py = _h5py()
    where = os.fspath(filepath)
    try:
        with zipfile.ZipFile(where) as z:
            config = json.loads(z.read(CONFIG))
            weights_bytes = z.read(WEIGHTS) if WEIGHTS in z.namelist() else None
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as e:
        raise KerasFileError(f"{where}: not a readable .keras file ({e})") from None
    model, layers, convert, entries = model_from_config(config, where, fresh=False)
    kinds = [entry.get("class_name") for entry in entries]
    # NOTE: a functional model's weights count its InputLayer among the layers, a Sequential's do not
    paths = _paths(["InputLayer"] + kinds)[1:] if config.get("class_name") == "Functional" else _paths(kinds)
    if not model.built:
        raise KerasFileError(f"{where}: the file does not say the model's input shape")
    if weights_bytes is not None:
        with h5py.File(io.BytesIO(weights_bytes), "r") as f:
            _load_weights(model, f, convert, dict(zip((layer.name for layer in layers), paths)), where)
    if compile:
        _compile(model, config.get("compile_config"), where)
    return model


def _load_weights(model, f, convert, paths, where):
    from .layers import Layer, from_keras_layouts
    root = f["layers"] if "layers" in f else f.get("_layer_checkpoint_dependencies")
    state = {}
    for i, layer in enumerate(model.layers):
        own = [(n, t) for n, t in model._named_tensors() if n.startswith(f"layers.{i}.")]
        if not own:
            continue
        if isinstance(layer, Layer):  # your own: its weights and those of the layers inside it, in Keras' layouts
            pairs = _read_tree(None if root is None else root.get(paths[layer.name]), layer, f"layers.{i}.", where,
                               f"layers/{paths[layer.name]}")
            try:
                state.update(from_keras_layouts(model, pairs, where))
            except ValueError as e:
                raise KerasFileError(str(e)) from None
            continue
        group = root.get(f"{paths[layer.name]}/vars") if root is not None else None
        if group is None:
            raise KerasFileError(f"{where}: no weights for layer {layer.name!r} in {WEIGHTS}")
        arrays = [numpy.asarray(group[str(k)]) for k in range(len(group))]
        if convert.get(layer.name):
            arrays = convert[layer.name](arrays)
        if len(arrays) != len(own):
            raise KerasFileError(f"{where}: layer {layer.name!r} has {len(arrays)} weight arrays in the file, "
                                 f"{len(own)} here")
        state.update({name: array for (name, _), array in zip(own, arrays)})
    try:
        model.load_state_dict(state)
    except ValueError as e:
        raise KerasFileError(f"{where}: {e}") from None


def _compile_config(model):
    """Keras' compile_config for a model compiled with a loss named here and a keras.optimizers object or name,
    so that load_model (here or in Keras) returns it compiled; None for anything else (a custom loss, a loss
    object with from_logits=True, a tinygrad_cnn.optim optimizer): that file loads uncompiled."""
    from . import losses, optimizers
    from .registry import get_registered_name
    loss, optimizer = getattr(model, "loss", None), getattr(model, "optimizer", None)
    names = [name for name, kind in losses.NAMES.items() if type(loss) is kind]
    own = getattr(loss, "fn", None)
    if own is not None and inspect.isfunction(own) and own.__name__ != "<lambda>":  # your own loss function
        names = [{"module": "builtins", "class_name": "function", "config": get_registered_name(own),
                  "registered_name": "function"}]
    if not names or loss.from_logits or not isinstance(optimizer, optimizers.Optimizer):
        return None
    kind = type(optimizer).__name__
    settings = {"name": kind.lower(), "learning_rate": float(optimizer.learning_rate), **optimizer.hyper}
    return {"optimizer": {"module": "keras.optimizers", "class_name": kind, "config": settings, "registered_name": None},
            "loss": names[0], "loss_weights": None, "metrics": _metrics_config(model, 0),
            "weighted_metrics": _metrics_config(model, 1), "run_eagerly": False, "steps_per_execution": 1,
            "jit_compile": False}


def _metrics_config(model, which):
    """compile's metrics (which=0) or weighted_metrics (1) as Keras writes them: names as given, a metric
    object as its config, so that its name= (SparseCategoricalAccuracy(name='acc') logs 'acc') survives."""
    from . import metrics as metrics_module
    from .registry import get_registered_name
    given = getattr(model, "_given_metrics", ([], []))[which]
    entries = []
    for metric in given:
        if isinstance(metric, str):
            entries.append(metric)
            continue
        if not isinstance(metric, metrics_module.Metric):  # a metric function, as Keras 3.15 writes one
            entries.append({"module": "builtins", "class_name": "function", "config": get_registered_name(metric),
                            "registered_name": "function"})
            continue
        entry = {"module": "keras.metrics", "class_name": type(metric).__name__, "registered_name": None,
                 "config": json.loads(json.dumps(metric.get_config(), default=_json_default))}
        entries.append(entry if type(metric).__module__ == metrics_module.__name__ else _own_entry(entry, type(metric)))
    return entries or None


def _keras_loss(loss, where):
    """The loss of a Keras compile_config: a name, or a loss object's config (Keras writes one for
    compile(loss=keras.losses.SparseCategoricalCrossentropy()); such a file loaded uncompiled, silently); None,
    with a warning, for one not offered here or with settings that are not (label_smoothing...)."""
    from . import losses
    if loss is None or isinstance(loss, str) and loss.lower() in losses.NAMES:
        return loss
    if isinstance(loss, dict) and loss.get("class_name") == "function" and loss.get("module") == "builtins":
        return _own_metric(loss, where, "loss function")  # your own loss function, found as Keras finds it
    kinds = {cls.__name__: cls for cls in losses.NAMES.values()}
    config = loss.get("config") or {} if isinstance(loss, dict) else {}
    kind = kinds.get(loss.get("class_name")) if isinstance(loss, dict) else None
    others = {key: value for key, value in config.items() if key not in ("name", "from_logits", "reduction", "dtype")
              and value not in (None, 0, 0.0, -1)}
    if kind is None or others or config.get("reduction", "sum_over_batch_size") != "sum_over_batch_size":
        warnings.warn(f"{where}: the file's loss {loss!r} is not offered here; the model loads uncompiled (compile "
                      f"it before fit or evaluate)", stacklevel=4)
        return None
    return kind(bool(config.get("from_logits", False))) if kind is not losses.MeanSquaredError else kind()


def _keras_metrics(metrics, where):
    """The metrics of a Keras compile_config: names, accuracy, Precision, Recall, F1Score and AUC objects' configs
    (their name= and settings kept), your own metrics (found as Keras finds them, else an error); any other
    Keras metric is left out with a warning."""
    from . import metrics as metrics_module
    kinds = {cls.__name__: cls for cls in (metrics_module.SparseCategoricalAccuracy,
                                           metrics_module.CategoricalAccuracy, metrics_module.BinaryAccuracy)}
    confusion = {cls.__name__: cls for cls in (metrics_module.Precision, metrics_module.Recall,
                                               metrics_module.FBetaScore, metrics_module.F1Score,
                                               metrics_module.AUC)}
    found, dropped = [], []
    for metric in metrics or []:
        config = metric.get("config") or {} if isinstance(metric, dict) else {}
        if isinstance(metric, str):
            found.append(metric)
        elif isinstance(metric, dict) and (metric.get("module") == "builtins" or metric.get("class_name") !=
                                           "function" and _is_own(metric)):
            found.append(_own_metric(metric, where))
        elif isinstance(metric, dict) and metric.get("class_name") in kinds and config.get("threshold", 0.5) == 0.5:
            found.append(kinds[metric["class_name"]](name=config.get("name")))
        elif isinstance(metric, dict) and metric.get("class_name") in confusion:
            settings = {key: value.get("config", {}).get("value") if isinstance(value, dict) and
                        value.get("class_name") == "__tensor__" else value  # NOTE: AUC's label_weights
                        for key, value in config.items() if key != "dtype"}
            found.append(confusion[metric["class_name"]](**settings))
        else:
            dropped.append(metric.get("class_name") if isinstance(metric, dict) else repr(metric))
    if dropped:
        warnings.warn(f"{where}: the file's metrics {', '.join(dropped)} are not offered here and left out",
                      stacklevel=4)
    return found


def _own_metric(entry, where, what=None):
    """Your own metric function or Metric subclass (or loss function) a compile_config names, found as Keras
    finds it."""
    from .registry import find
    function = entry.get("class_name") == "function"
    name = entry.get("config") if function else entry.get("class_name")
    try:
        found = find(name, name if function else entry.get("registered_name"),
                     what or ("metric function" if function else "metric"))
    except LookupError as e:
        raise KerasFileError(f"{where}: {e}") from None
    if function:
        return found
    try:
        return found.from_config(entry.get("config") or {})
    except TypeError as e:
        raise KerasFileError(f"{where}: {name}.from_config(config) failed ({e}); its __init__ must take the "
                             f"config's keys (name=, dtype=: pass **kwargs on to super().__init__)") from None


def _compile(model, compile_config, where):
    from . import optimizers
    loss = _keras_loss(compile_config.get("loss"), where) if compile_config else None
    if loss is None:
        return
    optimizer = compile_config.get("optimizer") or "rmsprop"
    if isinstance(optimizer, dict):
        kind = optimizer.get("class_name", "").lower()
        if kind not in optimizers.NAMES:
            return
        cls, settings = optimizers.NAMES[kind], optimizer.get("config", {})
        # NOTE: every hyperparameter the class takes (momentum, beta_1, ...), not the rate alone: a resumed fit
        # must step as the saved one did; a rate schedule (a dict) leaves the default rate
        accepted = inspect.signature(cls).parameters
        # NOTE: Keras' settings not offered here (clipnorm, amsgrad, a rate schedule...) were dropped silently
        dropped = [key for key, value in settings.items() if key not in accepted and key not in ("name", "ema_momentum")
                   and value not in (None, False)]
        dropped += ["learning_rate (a schedule)"] if isinstance(settings.get("learning_rate"), dict) else []
        if dropped:
            warnings.warn(f"{where}: the optimizer's {', '.join(dropped)} {'is' if len(dropped) == 1 else 'are'} not "
                          f"offered here; the model is compiled without (a fit from here steps differently)",
                          stacklevel=3)
        optimizer = cls(**{key: value for key, value in settings.items() if key in accepted and value is not None
                           and (key != "learning_rate" or isinstance(value, (int, float)))})
    metrics = _keras_metrics(compile_config.get("metrics"), where)
    weighted = _keras_metrics(compile_config.get("weighted_metrics"), where)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, weighted_metrics=weighted)


__all__ = ["save_model", "load_model", "save_weights", "load_weights", "KerasFileError",
           "register_keras_serializable", "get_custom_objects", "get_registered_name", "get_registered_object",
           "CustomObjectScope", "custom_object_scope"]
__getattr__ = not_offered("keras.saving", __all__)
