"""Keras 3's register of your own classes and functions, so that a .keras file can name them and
load_model can find them again: register_keras_serializable(package, name) files a class under
'package>name', custom_objects={...} and custom_object_scope({...}) name them for one load, and the
lookups go in Keras' order (the scope, the register, then custom_objects)."""
import contextlib
import inspect
import threading

_GLOBAL_OBJECTS = {}  # 'package>name' -> class or function
_GLOBAL_NAMES = {}    # class or function -> 'package>name'
_scopes = threading.local()


def register_keras_serializable(package="Custom", name=None):
    """A decorator filing a class (one with get_config) or a function under 'package>name' (name defaults
    to its own), which .keras files then name and load_model finds without custom_objects."""
    def decorator(obj):
        key = f"{package}>{obj.__name__ if name is None else name}"
        if inspect.isclass(obj) and not hasattr(obj, "get_config"):
            raise ValueError("Cannot register a class that does not have a get_config() method.")
        _GLOBAL_OBJECTS[key] = obj
        _GLOBAL_NAMES[obj] = key
        return obj
    return decorator


def get_custom_objects():
    """The live dict of registered objects, 'package>name' -> object (a scope's objects are not in it)."""
    return _GLOBAL_OBJECTS


def get_registered_name(obj):
    """The name a class or function is registered under, else its own __name__ (what Keras writes)."""
    return _GLOBAL_NAMES.get(obj, getattr(obj, "__name__", None))


def _scope():
    return getattr(_scopes, "objects", {})


def get_registered_object(name, custom_objects=None, module_objects=None):
    """The object filed under `name`: in a custom_object_scope, the register, custom_objects, then
    module_objects, as Keras looks; None if none."""
    for table in (_scope(), _GLOBAL_OBJECTS, custom_objects or {}, module_objects or {}):
        if name in table:
            return table[name]
    return None


class CustomObjectScope:
    """`with custom_object_scope({'MyLayer': MyLayer}):` load_model, from_config and model_from_json find
    these objects inside the block (as custom_objects=), and forget them after."""

    def __init__(self, custom_objects):
        self.custom_objects = dict(custom_objects or {})
        self.backup = None

    def __enter__(self):
        self.backup = _scope()
        _scopes.objects = dict(self.custom_objects)
        return self

    def __exit__(self, *exc):
        _scopes.objects = self.backup


custom_object_scope = CustomObjectScope


def module_name(obj):
    """The module a .keras file names for your own class or function: None for one of __main__, as Keras."""
    module = getattr(obj, "__module__", None)
    return None if module == "__main__" else module


@contextlib.contextmanager
def loading(custom_objects):
    """load_model's (or model_from_json's) custom_objects, for every find() inside the block."""
    before = getattr(_scopes, "custom", None)
    _scopes.custom = dict(custom_objects or {})
    try:
        yield
    finally:
        _scopes.custom = before


def find(class_name, registered_name, what, custom_objects=None):
    """Your class (or function) a file names, looked up by its registered name as Keras does (in a scope, the
    register, then the custom_objects of the load under way); an error naming it and how to make it known."""
    key = registered_name or class_name
    custom_objects = getattr(_scopes, "custom", None) if custom_objects is None else custom_objects
    found = get_registered_object(key, custom_objects)
    if found is None and what.endswith("function") and ">" not in key:  # NOTE: Keras <= 3.6 wrote the bare name
        found = next((obj for name, obj in {**(custom_objects or {}), **_scope()}.items()
                      if name.endswith(f">{key}")), None)
    if found is None:
        raise LookupError(f"your own {what} {class_name!r} (registered as {key!r}): its code is not saved with it: "
                          f"pass custom_objects={{{key!r}: {class_name}}} (load_model, model_from_json, or "
                          f"keras.saving.custom_object_scope), or decorate it with "
                          f"@keras.saving.register_keras_serializable() before loading")
    return found


__all__ = ["register_keras_serializable", "get_custom_objects", "get_registered_name", "get_registered_object",
           "CustomObjectScope", "custom_object_scope"]
