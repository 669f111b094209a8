"""The GRU inference step's element-wise part in C (models/gru_gates.c), built by the machine's C compiler on first use.

The library is built once per machine into the user's cache folder ($XDG_CACHE_HOME or ~/.cache, then
surname-classifier/), named by a hash of the source, the compiler and its flags, written under a temporary name and
renamed, so that processes building at once never load half a file. It is loaded with ctypes. Where there is no C
compiler, or the build or the load fails, `gru_children()` is None and models/fast_rnn.py runs the same step with torch
(the two agree to 1e-6; tests/test_speed.py).
"""
import ctypes
import functools
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("gru_gates.c")
BUILD_SECONDS = 60  # a build takes a fraction of a second; a compiler that hangs does not hold up the caller


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "surname-classifier"


def compiler() -> list[str] | None:
    """The C compiler's command: $CC (which may carry words of its own, as "ccache gcc"), else cc, gcc or clang."""
    if sys.platform == "win32":  # ctypes would need a DLL and MSVC's flags: torch's path there
        return None
    if os.environ.get("CC"):
        return shlex.split(os.environ["CC"])
    found = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    return [found] if found else None


def flags() -> list[str]:
    # no -march=native: a cache folder shared by machines of different CPUs must not hand one another's code over.
    # No -ffast-math either: the exp's rounding trick needs IEEE arithmetic; -fno-trapping-math lets the clamps
    # become vector min and max.
    chosen = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC"]
    if platform.machine().lower() in ("x86_64", "amd64") and torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        chosen += ["-mavx2", "-mfma"]
    return chosen


def build(cc: list[str], directory: Path) -> Path:
    """The library for this source, compiler and flags in `directory`, built there if it is not there yet."""
    command = [*cc, *flags()]
    key = hashlib.sha256(SOURCE.read_bytes() + "\0".join(command + [platform.machine()]).encode()).hexdigest()[:16]
    library = directory / f"gru_gates-{key}.so"
    if not library.exists():
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=directory) as scratch:
            built = Path(scratch) / library.name
            subprocess.run(command + [str(SOURCE), "-o", str(built)], check=True, capture_output=True,
                           timeout=BUILD_SECONDS)
            os.replace(built, library)
    return library


unavailable = None  # once gru_children() has been asked for and is None: why, in words for the user


@functools.cache
def gru_children():
    """gru_children(recurrent, parent_states, slot, first_slot, table, letter, out, rows, h) of models/gru_gates.c,
    taking data pointers; None where it cannot be built and loaded here (`unavailable` then says why)."""
    global unavailable
    unavailable = None
    cc = compiler()
    if cc is None:
        unavailable = ("not built on Windows" if sys.platform == "win32"
                       else "no C compiler found (cc, gcc, clang or $CC)")
        return None
    try:
        function = ctypes.CDLL(str(build(cc, cache_dir()))).gru_children
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:  # RuntimeError: no home folder to find
        unavailable = f"building it with {shlex.join(cc)} failed: {type(e).__name__}"
        return None
    function.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] + [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 2
    function.restype = None
    return function
