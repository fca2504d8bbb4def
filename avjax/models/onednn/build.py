"""Compiles conv3x3.cc against jaxlib's XLA FFI headers and oneDNN into a shared library.

`python -m avjax.models.onednn` builds it (`./run.sh` does so once per environment);
`library_path()` builds it on first use otherwise. The library lands in a cache folder
($AVJAX_ONEDNN_CACHE, default ~/.cache/avjax/onednn) under a name that hashes the source, the
jaxlib version, the oneDNN library and the compiler command, so a change to any of them builds
a new one and an old one is never loaded by mistake. Nothing prebuilt is shipped.

oneDNN comes from the `onednn-devel-cpu-gomp` wheel (headers and libdnnl.so installed under
the environment's prefix) or from $AVJAX_ONEDNN_ROOT (a folder with include/ and lib/, e.g.
/usr for Debian's libdnnl-dev).
"""

import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conv3x3.cc")


class BuildError(RuntimeError):
  """The library cannot be built here; the message is one line saying why."""


def onednn_root() -> str:
  """The prefix holding include/oneapi/dnnl/dnnl.hpp and lib/libdnnl.so."""
  given = os.environ.get("AVJAX_ONEDNN_ROOT", "")
  candidates = [given] if given else [sys.prefix, sysconfig.get_paths()["data"], "/usr"]
  for root in candidates:
    if (os.path.exists(os.path.join(root, "include", "oneapi", "dnnl", "dnnl.hpp"))
        and _libdnnl(root)):
      return root
  where = given or ", ".join(dict.fromkeys(candidates))
  raise BuildError(f"no oneDNN headers and library under {where} (pip install "
                   "onednn-devel-cpu-gomp, or set AVJAX_ONEDNN_ROOT)")


def _libdnnl(root: str) -> str:
  for lib_dir in ("lib", "lib64", os.path.join("lib", "x86_64-linux-gnu")):
    found = sorted(glob.glob(os.path.join(root, lib_dir, "libdnnl.so*")))
    if found:
      return found[0]
  return ""


def _compile_command(root: str, lib: str, out: str) -> list[str]:
  import jax  # pylint: disable=import-outside-toplevel
  lib_dir = os.path.dirname(lib)
  return [os.environ.get("CXX", "g++"), "-O2", "-std=c++17", "-shared", "-fPIC", "-fopenmp", "-w",
          "-I" + jax.ffi.include_dir(), "-I" + os.path.join(root, "include"), SOURCE,
          "-L" + lib_dir, "-l:" + os.path.basename(lib), "-Wl,-rpath," + lib_dir, "-o", out]


def _cache_dir() -> str:
  return os.environ.get("AVJAX_ONEDNN_CACHE") or os.path.expanduser("~/.cache/avjax/onednn")


def library_path(verbose: bool = True) -> str:
  """The built library's path, compiling it first when this source and setup lack one."""
  import jaxlib  # pylint: disable=import-outside-toplevel
  root = onednn_root()
  compiler = os.environ.get("CXX", "g++")
  if not shutil.which(compiler):
    raise BuildError(f"no C++ compiler ({compiler}) to build the oneDNN kernels with")
  lib = _libdnnl(root)
  digest = hashlib.sha256()
  with open(SOURCE, "rb") as f:
    digest.update(f.read())
  stat = os.stat(lib)
  digest.update(f"{jaxlib.__version__} {os.path.realpath(lib)} {stat.st_size} "
                f"{stat.st_mtime_ns}".encode())
  digest.update(" ".join(_compile_command(root, lib, "OUT")).encode())
  cache = _cache_dir()
  out = os.path.join(cache, f"libavjax_onednn-{digest.hexdigest()[:16]}.so")
  if os.path.exists(out):
    return out
  os.makedirs(cache, exist_ok=True)
  # One build however many processes start at once (the others wait, then load it).
  with open(out + ".lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if os.path.exists(out):
      return out
    if verbose:
      print("Building the oneDNN convolution kernels (once per setup) ...", file=sys.stderr)
    tmp = f"{out}.{os.getpid()}.tmp"
    result = subprocess.run(_compile_command(root, lib, tmp), capture_output=True, text=True,
                            check=False)
    if result.returncode:
      if os.path.exists(tmp):
        os.remove(tmp)
      last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
      raise BuildError(f"compiling {os.path.basename(SOURCE)} failed: {last}")
    os.replace(tmp, out)
  return out


def main() -> None:
  try:
    print(library_path())
  except BuildError as e:
    # Not fatal: avjax then runs XLA's convolutions and says so once.
    print(f"warning: oneDNN kernels not built: {e}", file=sys.stderr)
