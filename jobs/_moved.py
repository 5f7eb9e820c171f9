"""The deprecation path of the modules the engine's capability folders replaced (jobs.services,
jobs.selectors): an old name still works, and says where it lives now."""
import importlib
import warnings


def forwarder(old: str, modules: list[str]):
    """A module __getattr__ that finds `name` in the first of `modules` defining it, with a warning."""

    def __getattr__(name: str):
        if not name.startswith("__"):
            for path in modules:
                module = importlib.import_module(path)
                if name in vars(module):
                    warnings.warn(f"{old}.{name} moved to {path}.{name}", DeprecationWarning, stacklevel=2)
                    return getattr(module, name)
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    return __getattr__
