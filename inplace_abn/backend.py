# New file (replaces the import-time `load(...)` of OCNet.pytorch@679a45b inplace_abn/functions.py).
# License: MIT (this reproduction).
"""Backend selection and lazy JIT loading for InPlace-ABN: nothing is compiled at import time.

Three interchangeable backends implement the op API of ``_backend.pyi``:

* ``cuda``:  JIT build of ``src/*.cpp`` + ``src/*.cu`` with ``-DWITH_CUDA`` (``ocnet_iabn_cuda``);
  the C++ dispatch routes each call to the CPU or the CUDA kernels.
* ``cpp``:   JIT build of the ``.cpp`` sources only (name ``ocnet_iabn_cpu``); CPU kernels.
* ``torch``: ``inplace_abn.reference``, the same ops in torch tensor ops.

``IABN_BACKEND=auto|cuda|cpp|torch`` (default ``auto``). Nothing compiles at import: the first
``get_backend()`` call (first forward, or ``backend_name()``) loads and caches the backend.
``auto`` tries cuda (only when a GPU is visible), then cpp, then torch, and emits exactly one
warning, carrying the compiler's message, if it had to fall back. An explicit choice that fails
raises ``BackendBuildError`` with the compiler's message.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import threading
import warnings
from pathlib import Path
from types import ModuleType

import torch

from utils.errors import ConfigError, OCNetError

from . import reference

logger = logging.getLogger(__name__)

ENV_VAR = "IABN_BACKEND"
CHOICES = ("auto", "cuda", "cpp", "torch")
EXTENSION_NAMES = {"cpp": "ocnet_iabn_cpu", "cuda": "ocnet_iabn_cuda"}
DEFAULT_ARCH_LIST = "9.0"
_SRC = Path(__file__).resolve().parent / "src"
_MAX_MESSAGE = 4000

_lock = threading.RLock()
_loaded: dict[str, ModuleType] = {"torch": reference}
_active: dict[str, object] = {"name": None}
_warned_routes: set[str] = set()


class BackendBuildError(OCNetError, RuntimeError):
    """A requested compiled backend could not be built or loaded (the message says why and what to
    install or set): reported without a traceback."""


def requested_backend() -> str:
    """The validated value of IABN_BACKEND (default 'auto')."""
    value = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if value not in CHOICES:
        raise ConfigError(f"{ENV_VAR}={value!r} is invalid; choose one of {', '.join(CHOICES)}")
    return value


def extensions_dir(name: str) -> Path:
    """Writable build dir: $TORCH_EXTENSIONS_DIR/<name>, else ~/.cache/ocnet_extensions/<name>."""
    base = os.environ.get("TORCH_EXTENSIONS_DIR")
    if not base:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(cache, "ocnet_extensions")
    path = Path(base) / name
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BackendBuildError(f"cannot create the extension build directory {path}: {err}; "
                                "set TORCH_EXTENSIONS_DIR to a writable directory") from err
    if not os.access(path, os.W_OK):
        raise BackendBuildError(f"extension build directory {path} is not writable; "
                                "set TORCH_EXTENSIONS_DIR to a writable directory")
    return path


def _shorten(text: str) -> str:
    text = str(text).strip()
    return text if len(text) <= _MAX_MESSAGE else "...\n" + text[-_MAX_MESSAGE:]


def _jit_load(flavour: str, sources: list[Path], with_cuda: bool) -> ModuleType:
    from torch.utils import cpp_extension  # heavy; only imported when building

    name = EXTENSION_NAMES[flavour]
    kwargs = dict(name=name, sources=[str(s) for s in sources],
                  # hidden visibility: the cpu and cuda builds define the same C++ symbols and
                  # may both be loaded in one process; only the module init stays exported
                  extra_cflags=["-O3", "-fvisibility=hidden"] + ["-DWITH_CUDA"] * with_cuda,
                  extra_include_paths=[str(_SRC)], build_directory=str(extensions_dir(name)),
                  verbose=False)
    if with_cuda:
        kwargs["extra_cuda_cflags"] = ["-O3", "-DWITH_CUDA", "-Xcompiler", "-fvisibility=hidden"]
    try:
        return cpp_extension.load(**kwargs)
    except Exception as err:  # the compiler's output is in the message of the build error
        raise BackendBuildError(f"building the '{flavour}' InPlace-ABN extension ({name}) "
                                f"failed:\n{_shorten(err)}") from err


def _cuda_home() -> str:
    """A CUDA toolkit root that has nvcc and libcudart (raises BackendBuildError otherwise)."""
    def usable(root):
        root = Path(root)
        return ((root / "bin" / "nvcc").exists()
                and (root / "include" / "cuda_runtime_api.h").exists()
                and any(any((root / lib).glob("libcudart.so*")) for lib in ("lib64", "lib")))
    env = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if env:  # an explicit choice is used as given
        if usable(env):
            return str(Path(env))
        raise BackendBuildError(f"CUDA_HOME={env} lacks bin/nvcc, include/cuda_runtime_api.h "
                                "or lib64/libcudart.so")
    candidates = []
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(str(Path(nvcc).resolve().parent.parent))
    candidates.append("/usr/local/cuda")
    for root in candidates:
        if usable(root):
            return str(Path(root))
    raise BackendBuildError("nvcc / the CUDA toolkit was not found (looked at PATH and "
                            "/usr/local/cuda); install the CUDA toolkit or set CUDA_HOME")


def _check_cuda_toolchain() -> str:
    if torch.version.cuda is None:
        raise BackendBuildError("this torch build has no CUDA support (torch.version.cuda is None)")
    home = _cuda_home()
    out = subprocess.run([os.path.join(home, "bin", "nvcc"), "--version"], capture_output=True,
                         text=True, check=False).stdout
    match = re.search(r"release (\d+)\.(\d+)", out)
    if match is None:
        raise BackendBuildError(f"cannot read the nvcc version from: {out!r}")
    toolkit = f"{match.group(1)}.{match.group(2)}"
    if match.group(1) != torch.version.cuda.split(".")[0]:
        raise BackendBuildError(f"CUDA toolkit {toolkit} at {home} does not match the CUDA "
                                f"{torch.version.cuda} that torch was built with")
    if toolkit != ".".join(torch.version.cuda.split(".")[:2]):
        logger.warning("CUDA toolkit %s differs from torch's CUDA %s in the minor version",
                       toolkit, torch.version.cuda)
    return home


def _build(flavour: str) -> ModuleType:
    cpp_sources = [_SRC / "inplace_abn.cpp", _SRC / "inplace_abn_cpu.cpp"]
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        raise BackendBuildError(f"the C++ compiler {compiler!r} was not found (install g++ or "
                                "set CXX)")
    if flavour == "cpp":
        return _jit_load("cpp", cpp_sources, with_cuda=False)
    home = _check_cuda_toolchain()
    os.environ.setdefault("CUDA_HOME", home)
    import torch.utils.cpp_extension as cpp_extension
    if cpp_extension.CUDA_HOME != home:  # its guess is made once at import (may lack libcudart)
        logger.info("InPlace-ABN: using CUDA_HOME=%s for the CUDA build", home)
        cpp_extension.CUDA_HOME = home
    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_ARCH_LIST
        logger.warning("InPlace-ABN: no GPU visible and TORCH_CUDA_ARCH_LIST unset; "
                       "building the CUDA kernels for TORCH_CUDA_ARCH_LIST=%s", DEFAULT_ARCH_LIST)
    cuda_sources = [_SRC / "inplace_abn_cuda.cpp", _SRC / "inplace_abn_kernels.cu"]
    return _jit_load("cuda", cpp_sources + cuda_sources, with_cuda=True)


def load(name: str) -> ModuleType:
    """Load (building if needed) and cache the backend `name` in {'cuda', 'cpp', 'torch'}.

    Raises BackendBuildError with the compiler's message when it cannot be built.
    """
    if name not in ("cuda", "cpp", "torch"):
        raise ConfigError(f"unknown InPlace-ABN backend {name!r}; choose cuda, cpp or torch")
    with _lock:
        if name not in _loaded:
            _loaded[name] = _build(name)
        return _loaded[name]


def _select(choice: str) -> str:
    if choice != "auto":
        load(choice)
        return choice
    failures = []
    order = (["cuda"] if torch.cuda.is_available() else []) + ["cpp"]
    for name in order:
        try:
            load(name)
        except BackendBuildError as err:
            failures.append(f"[{name}] {err}")
            continue
        break
    else:
        name = "torch"
    if failures:
        warnings.warn(f"InPlace-ABN (IABN_BACKEND=auto) is using the '{name}' backend because: "
                      + "\n".join(failures), RuntimeWarning, stacklevel=3)
    return name


def get_backend() -> ModuleType:
    """The active backend module (selected from IABN_BACKEND on first call, then cached)."""
    with _lock:
        if _active["name"] is None:
            _active["name"] = _select(requested_backend())
            logger.info("InPlace-ABN backend: %s", _active["name"])
        return _loaded[_active["name"]]


def backend_name() -> str:
    """Name of the active backend: 'cuda', 'cpp' or 'torch' (loads it on first call)."""
    get_backend()
    return str(_active["name"])


def set_backend(name: str | None) -> None:
    """Force the active backend (tests, benchmarks); None re-reads IABN_BACKEND on next use."""
    with _lock:
        if name is not None:
            load(name)
        _active["name"] = name


def reset() -> None:
    """Forget the selection and the compiled modules (tests); the next use selects again."""
    with _lock:
        _loaded.clear()
        _loaded["torch"] = reference
        _active["name"] = None
        _warned_routes.clear()


def backend_for(x: torch.Tensor) -> ModuleType:
    """The backend for one call: a CUDA tensor on a backend without CUDA kernels goes to torch,
    and so does a meta tensor (shape inference: the compiled kernels need real storage)."""
    if x.is_meta:
        return reference
    backend = get_backend()
    if x.is_cuda and not backend.has_cuda():
        with _lock:
            if backend_name() not in _warned_routes:
                _warned_routes.add(backend_name())
                warnings.warn(f"InPlace-ABN: the '{backend_name()}' backend has no CUDA kernels; "
                              "CUDA tensors use the torch backend", RuntimeWarning, stacklevel=3)
        return reference
    return backend
