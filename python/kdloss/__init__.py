"""kdloss: fused knowledge-distillation losses (LwF, DER and the frameworks' terms) on CPUs.

    import kdloss
    kdloss.isa()                 # the implementation in use: "avx512", "avx2", "neon", "scalar"
    kdloss.set_isa("avx2")       # force one for the whole process ("auto" restores the choice)
    kdloss.version()             # the version of the shared library actually loaded
    kdloss.set_num_threads(2)    # threads per call, process-wide (0: one per CPU; 1: the default)

    from kdloss.torch import DistillationReg, distillation_loss   # PyTorch (imports torch)

The shared library is found through KDLOSS_LIBRARY (a path), else next to
this package, else where `meson install` put it, else by the loader.
"""
import operator

from . import _lib

__all__ = ["get_num_threads", "isa", "set_isa", "set_num_threads", "supported_isas", "version"]

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


def set_num_threads(n):
    """Use n threads for each later call, process-wide (kd_set_num_threads):
    1, the default, runs on the calling thread; 0 means one per online CPU.
    Results are the same bits for every thread count. TypeError for a non-int,
    ValueError for n < 0 or a count the library refuses (nothing changes then).
    The KDLOSS_NUM_THREADS environment variable sets the count at start-up."""
    if isinstance(n, bool):
        raise TypeError("kdloss: set_num_threads takes an int, not bool")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"kdloss: set_num_threads takes an int, not {type(n).__name__}") from None
    if n < 0:
        raise ValueError(f"kdloss: set_num_threads({n}): the thread count must be >= 0")
    # ctypes wraps an int beyond a C int: clamp so a huge n is refused, not wrapped.
    status = _lib.lib.kd_set_num_threads(min(n, 2 ** 31 - 1))
    if status != _lib.KD_OK:
        raise ValueError(f"kdloss: set_num_threads({n}): {_lib.status_str(status)}")


def get_num_threads():
    """The thread count in use (0 given to set_num_threads resolved to the CPUs)."""
    return _lib.lib.kd_get_num_threads()


def __getattr__(name):
    # `kdloss.torch` without importing torch for users of the functions above.
    if name == "torch":
        import importlib
        return importlib.import_module(".torch", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
