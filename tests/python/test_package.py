"""kdloss's functions without torch, and how the package finds the library."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import kdloss
from conftest import ROOT


def test_version_is_the_headers():
    header = (ROOT / "include" / "kdloss.h").read_text()
    parts = [re.search(rf"#define KDLOSS_VERSION_{k} (\d+)", header).group(1)
             for k in ("MAJOR", "MINOR", "PATCH")]
    assert kdloss.version() == ".".join(parts)


def test_isa():
    isas = kdloss.supported_isas()
    assert "scalar" in isas and "auto" not in isas
    assert kdloss.isa() in isas
    try:
        kdloss.set_isa("scalar")
        assert kdloss.isa() == "scalar"
        with pytest.raises(ValueError, match="unknown ISA 'sse'; valid: auto, scalar"):
            kdloss.set_isa("sse")
        for name in ("avx2", "avx512", "neon"):
            if name not in isas:
                with pytest.raises(ValueError, match="lacks that ISA"):
                    kdloss.set_isa(name)
                assert kdloss.isa() == "scalar"  # nothing changed
    finally:
        kdloss.set_isa("auto")
    assert kdloss.isa() == isas[-1]


@pytest.fixture
def threads_restored():
    before = kdloss.get_num_threads()
    yield
    kdloss.set_num_threads(before)
    assert kdloss.get_num_threads() == before


def test_num_threads(threads_restored):
    kdloss.set_num_threads(2)
    assert kdloss.get_num_threads() == 2
    kdloss.set_num_threads(1)
    assert kdloss.get_num_threads() == 1
    kdloss.set_num_threads(0)  # one per online CPU, as the library counts them
    assert kdloss.get_num_threads() >= 1
    kdloss.set_num_threads(1)
    for bad in (2.0, "2", None, True):
        with pytest.raises(TypeError, match="set_num_threads takes an int"):
            kdloss.set_num_threads(bad)
    with pytest.raises(ValueError, match=r"set_num_threads\(-1\): the thread count must be >= 0"):
        kdloss.set_num_threads(-1)
    # Counts the library refuses carry its kd_status_str text (KD_ERR_THREADS's,
    # taken from the C call refusing -1).
    text = kdloss._lib.status_str(kdloss._lib.lib.kd_set_num_threads(-1))
    assert "thread count" in text
    for big in (100000, 2 ** 40):
        with pytest.raises(ValueError, match=re.escape(f"set_num_threads({big}): {text}")):
            kdloss.set_num_threads(big)
    assert kdloss.get_num_threads() == 1  # nothing changed


def loaded_from(pythonpath, env_library=None):
    """Import kdloss in a fresh interpreter; the path its library came from."""
    env = {k: v for k, v in os.environ.items() if k != "KDLOSS_LIBRARY"}
    env["PYTHONPATH"] = str(pythonpath)
    if env_library is not None:
        env["KDLOSS_LIBRARY"] = env_library
    out = subprocess.run([sys.executable, "-c",
                          "import kdloss, kdloss._lib as l; print(l.lib._name, kdloss.isa())"],
                         env=env, capture_output=True, text=True, timeout=60)
    return out.returncode, out.stdout.strip(), out.stderr


@pytest.fixture
def package_copy(tmp_path):
    """A copy of the package without a library, and the built library's path."""
    shutil.copytree(Path(kdloss.__file__).parent, tmp_path / "kdloss",
                    ignore=shutil.ignore_patterns("__pycache__", "_config.py"))
    return tmp_path, Path(kdloss._lib.lib._name)


def test_library_next_to_package(package_copy):
    root, built = package_copy
    shutil.copy(built, root / "kdloss" / "libkdloss.so.0")
    rc, out, err = loaded_from(root)
    assert rc == 0, err
    assert out.split()[0] == str(root / "kdloss" / "libkdloss.so.0")


def test_library_from_install_config(package_copy):
    root, built = package_copy
    libdir = root / "lib"
    libdir.mkdir()
    shutil.copy(built, libdir / "libkdloss.so.0")
    (root / "kdloss" / "_config.py").write_text(f'LIBDIR = "{libdir}"\nVERSION = "x"\n')
    rc, out, err = loaded_from(root)
    assert rc == 0, err
    assert out.split()[0] == str(libdir / "libkdloss.so.0")


def test_library_env_wins_and_fails_clearly(package_copy):
    root, built = package_copy
    shutil.copy(built, root / "kdloss" / "libkdloss.so.0")
    rc, out, err = loaded_from(root, str(built))
    assert rc == 0 and out.split()[0] == str(built), err
    rc, out, err = loaded_from(root, str(root / "missing.so"))
    assert rc != 0 and "set KDLOSS_LIBRARY to its path" in err and "missing.so" in err
