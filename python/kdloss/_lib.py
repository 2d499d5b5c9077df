"""Finding and binding the kdloss shared library (ctypes; no compiled glue).

Where the library is looked for, first match wins:
  1. KDLOSS_LIBRARY, a path, when set (nothing else is tried then);
  2. next to the package: this directory or its parent;
  3. the libdir `meson install` put it in (the generated module _config);
  4. the dynamic loader's search path.
"""
import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

if sys.platform == "darwin":
    _NAMES = ("libkdloss.0.dylib", "libkdloss.dylib")
elif sys.platform == "win32":
    _NAMES = ("kdloss.dll",)
else:
    _NAMES = ("libkdloss.so.0", "libkdloss.so")


def _candidates():
    env = os.environ.get("KDLOSS_LIBRARY")
    if env:
        return [env]
    here = Path(__file__).resolve().parent
    dirs = [here, here.parent]
    try:
        from . import _config  # written by meson at configure time
        dirs.append(Path(_config.LIBDIR))
    except ImportError:
        pass  # running from a source tree
    paths = [str(d / n) for d in dirs for n in _NAMES if (d / n).exists()]
    return paths + [ctypes.util.find_library("kdloss") or _NAMES[0]]


def _load():
    tried = []
    for path in _candidates():
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path}: {e}")
    raise OSError("kdloss: cannot load the kdloss shared library; set KDLOSS_LIBRARY to its "
                  "path (tried: " + "; ".join(tried) + ")")


lib = _load()

_f, _sz, _p, _i = ctypes.c_float, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_int
loss_f32 = lib.kd_loss_f32
loss_f32.argtypes = [_i, _f, _f, _sz, _sz, _p, _sz, _p, _sz, _p]
loss_f32.restype = _i
loss_grad_f32 = lib.kd_loss_grad_f32
loss_grad_f32.argtypes = [_i, _f, _f, _sz, _sz, _p, _sz, _p, _sz, _p, _p, _sz]
loss_grad_f32.restype = _i


class Params(ctypes.Structure):
    """struct kd_params (include/kdloss.h)."""
    _fields_ = [("distance", _i), ("factor", _f), ("temperature", _f), ("beta", _f),
                ("reduction", _i), ("row_weight", _p)]


loss_ex_f32 = lib.kd_loss_ex_f32
loss_ex_f32.argtypes = [ctypes.POINTER(Params), _sz, _sz, _p, _sz, _p, _sz, _p, _p, _p, _sz]
loss_ex_f32.restype = _i
lib.kd_set_isa.argtypes = [_i]
lib.kd_set_isa.restype = _i
lib.kd_get_isa.argtypes = []
lib.kd_get_isa.restype = _i
lib.kd_isa_supported.argtypes = [_i]
lib.kd_isa_supported.restype = _i
lib.kd_isa_name.argtypes = [_i]
lib.kd_isa_name.restype = ctypes.c_char_p
lib.kd_status_str.argtypes = [_i]
lib.kd_status_str.restype = ctypes.c_char_p
lib.kd_set_num_threads.argtypes = [_i]
lib.kd_set_num_threads.restype = _i
lib.kd_get_num_threads.argtypes = []
lib.kd_get_num_threads.restype = _i
lib.kd_version_string.argtypes = []
lib.kd_version_string.restype = ctypes.c_char_p

# enum kd_distance, enum kd_reduction, enum kd_status (include/kdloss.h)
(KD_CROSS_ENTROPY, KD_MSE, KD_SOFT_CROSS_ENTROPY, KD_KL_DIV, KD_KL_DIV_REVERSE,
 KD_CROSS_ENTROPY_UNIFORM_EPS, KD_JSD, KD_BCE_SIGMOID) = range(8)
KD_REDUCE_MEAN, KD_REDUCE_SUM = 0, 1
KD_OK, KD_ERR_NONFINITE, KD_ERR_NOMEM = 0, 7, 9


def status_str(status):
    return lib.kd_status_str(status).decode()
