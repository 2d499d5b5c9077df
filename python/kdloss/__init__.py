"""kdloss: fused knowledge-distillation losses (LwF cross-entropy, DER MSE) on CPUs.

    import kdloss
    kdloss.isa()                 # the implementation in use: "avx512", "avx2", "neon", "scalar"
    kdloss.set_isa("avx2")       # force one for the whole process ("auto" restores the choice)
    kdloss.version()             # the version of the shared library actually loaded

    from kdloss.torch import DistillationReg, distillation_loss   # PyTorch (imports torch)

The shared library is found through KDLOSS_LIBRARY (a path), else next to
this package, else where `meson install` put it, else by the loader.
"""
from . import _lib

__all__ = ["isa", "set_isa", "supported_isas", "version"]

# enum kd_isa's values 0..4 and their names, from the library itself
_ISA_NAMES = [_lib.lib.kd_isa_name(i).decode() for i in range(5)]


def version():
    """The "MAJOR.MINOR.PATCH" of the loaded shared library."""
    return _lib.lib.kd_version_string().decode()


def isa():
    """The name of the ISA in use now."""
    return _ISA_NAMES[_lib.lib.kd_get_isa()]


def supported_isas():
    """The ISAs this CPU and build can run, best last (never "auto")."""
    return [n for i, n in enumerate(_ISA_NAMES) if i > 0 and _lib.lib.kd_isa_supported(i)]


def set_isa(name):
    """Use ISA `name` ("auto", "scalar", "avx2", "avx512", "neon") for the whole
    process. ValueError for an unknown name or one this CPU or build lacks
    (nothing changes then). Calls already running finish on their ISA."""
    if name not in _ISA_NAMES:
        raise ValueError(f"kdloss: unknown ISA {name!r}; valid: {', '.join(_ISA_NAMES)}")
    status = _lib.lib.kd_set_isa(_ISA_NAMES.index(name))
    if status != _lib.KD_OK:
        raise ValueError(f"kdloss: set_isa({name!r}): {_lib.status_str(status)}")


def __getattr__(name):
    # `kdloss.torch` without importing torch for users of the functions above.
    if name == "torch":
        import importlib
        return importlib.import_module(".torch", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
