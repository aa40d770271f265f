"""Build ``lstm_scan.cpp`` (the LSTM scan), ``sampling.cpp`` and ``diagonal.cpp`` (the cached
samplers' passes) into a shared library once per environment and load it.

The library is compiled by this machine's C++ compiler (``$CXX``, else ``c++``) against the
installed torch, with one compiler call (no ninja, no download), into a cache directory:

    $PIXELRNN_NATIVE_CACHE, else $XDG_CACHE_HOME/pixelrnn/native, else ~/.cache/pixelrnn/native
        <key>/pixelrnn_scan.so      the library (written to a temporary name, then renamed)
        <key>/build.log             the compiler's output when the build failed

``key`` is a hash of everything that makes a build different: the sources, the compiler flags
(they follow torch's CPU capability: AVX512, AVX2 or none), the compiler, the torch and Python
versions. A failed build is not retried by later processes until build.log is deleted (or the
source, torch or the compiler changes). Concurrent processes build it once (a file lock).

With torch's OpenMP runtime the library is linked with ``-fopenmp``: the loader then reuses the
``libgomp.so.1`` that torch has already loaded (same soname), so the kernel's ``at::parallel_for``
runs on torch's threads. Without OpenMP the kernel runs its chunks one after another.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

SOURCES = [Path(__file__).with_name(name) for name in ("lstm_scan.cpp", "sampling.cpp", "diagonal.cpp")]
HEADERS = [Path(__file__).with_name(name) for name in ("fastmath.h", "sampling.h")]
LIBRARY = "pixelrnn_scan.so"
ARCH_FLAGS = {"AVX512": ["-mavx512f", "-mavx512vl", "-mavx512bw", "-mavx512dq", "-mavx2", "-mfma"],
              "AVX2": ["-mavx2", "-mfma"]}


class BuildError(RuntimeError):
    """The native library could not be built or loaded (the message says why)."""


def uses_openmp() -> bool:
    """Whether torch's CPU threads are OpenMP's (the kernel then parallelises with them)."""
    return "parallel backend: OpenMP" in torch.__config__.parallel_info()


def compiler() -> str | None:
    return shutil.which(os.environ.get("CXX") or "c++")


def compile_flags() -> list[str]:
    abi = int(torch.compiled_with_cxx11_abi())
    arch = ARCH_FLAGS.get(torch.backends.cpu.get_cpu_capability(), [])
    threads = ["-fopenmp"] if uses_openmp() else ["-fopenmp-simd"]
    return ["-O3", "-std=c++17", "-shared", "-fPIC", f"-D_GLIBCXX_USE_CXX11_ABI={abi}", *threads, *arch]


def command(cxx: str, out: Path) -> list[str]:
    import torch.utils.cpp_extension as cpp_extension  # here: importing it takes ~0.15 s

    includes = [f"-I{p}" for p in cpp_extension.include_paths()]
    libs = [f"-L{p}" for p in cpp_extension.library_paths()]
    rpath = [f"-Wl,-rpath,{p}" for p in cpp_extension.library_paths()]
    return [cxx, *compile_flags(), *includes, *map(str, SOURCES), "-o", str(out), *libs, *rpath, "-lc10", "-ltorch_cpu"]


def cache_root() -> Path:
    if os.environ.get("PIXELRNN_NATIVE_CACHE"):
        return Path(os.environ["PIXELRNN_NATIVE_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pixelrnn" / "native"


def build_dir(cxx: str) -> Path:
    h = hashlib.sha256()
    sources = [src.read_bytes() for src in SOURCES + HEADERS]
    for part in (*sources, " ".join(compile_flags()).encode(), os.path.realpath(cxx).encode(),
                 torch.__version__.encode(), sys.version.encode(), str(Path(torch.__file__).parent).encode()):
        h.update(part)
        h.update(b"\0")
    return cache_root() / h.hexdigest()[:16]


def build(folder: Path, cxx: str) -> Path:
    """Compile the library into ``folder`` unless it is there (or failed there before)."""
    import fcntl  # Unix only (the library is built on Linux only)

    lib, log = folder / LIBRARY, folder / "build.log"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it right now
        if lib.exists():
            return lib
        if log.exists():
            raise BuildError(f"an earlier build failed (see {log}; delete it to try again)")
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=folder)
        os.close(fd)
        try:
            r = subprocess.run(command(cxx, Path(tmp)), capture_output=True, text=True)
            if r.returncode != 0:
                log.write_text(" ".join(command(cxx, Path(tmp))) + "\n" + r.stdout + r.stderr)
                raise BuildError(f"the compiler failed (see {log})")
            os.chmod(tmp, 0o755)
            os.replace(tmp, lib)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return lib


def load() -> str:
    """Build (when needed) and load the library; its ops appear as ``torch.ops.pixelrnn_native``.
    Returns the library's path; raises BuildError when it cannot be had."""
    if not sys.platform.startswith("linux"):
        raise BuildError(f"built on Linux only (this is {sys.platform})")
    cxx = compiler()
    if cxx is None:
        raise BuildError(f"no C++ compiler ({os.environ.get('CXX') or 'c++'}) on the PATH")
    lib = build(build_dir(cxx), cxx)
    try:
        torch.ops.load_library(str(lib))
    except (OSError, RuntimeError) as e:
        raise BuildError(f"{lib} could not be loaded: {e}") from e
    return str(lib)
