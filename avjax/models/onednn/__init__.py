"""oneDNN's convolution kernels as XLA FFI custom calls, for the towers' 3x3 convolutions on CPU.

`forward`, `input_grad` and `kernel_grad` are the three convolutions of a SAME 3x3 layer
(NHWC x HWIO, f32, stride 1 or 2), each one custom call into conv3x3.cc. `avjax.models.conv`
uses them on the CPU backend when `enabled()`; GPUs and TPUs keep XLA's kernels.

The switch: $AVJAX_CONV_KERNELS = auto (default: oneDNN on CPU when the library builds and
loads, else XLA's kernels with one warning line), onednn (an error when unavailable) or xla.

Under a sharded batch each custom call runs on its device's shard (a `custom_partitioning`
rule): the forward and input gradient per shard along the batch, the kernel gradient per
shard and then summed over the devices that split the batch. Other shardings of an operand
are gathered first.
"""

import ctypes
import functools
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding, PartitionSpec

from avjax.errors import ConfigError
from avjax.models.onednn import build

# OpenMP's idle threads otherwise spin for a while after each call, on the cores XLA's own
# threads need next; read when the OpenMP runtime loads (with the library, below).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ENV = "AVJAX_CONV_KERNELS"
MODES = ("auto", "onednn", "xla")
_TARGETS = {"forward": "AvjaxConv3x3Forward", "input_grad": "AvjaxConv3x3InputGrad",
            "kernel_grad": "AvjaxConv3x3KernelGrad"}


class OnednnUnavailable(ConfigError):
  """$AVJAX_CONV_KERNELS is not a known value, or is onednn and the library cannot be built or
  loaded (one line)."""


def mode() -> str:
  value = os.environ.get(ENV, "auto") or "auto"
  if value not in MODES:
    raise OnednnUnavailable(f"{ENV}={value!r}; use one of " + ", ".join(MODES))
  return value


def _load() -> str:
  """Builds (once per setup) and loads the library, registers its targets; its oneDNN version."""
  lib = ctypes.cdll.LoadLibrary(build.library_path())
  for name, symbol in _TARGETS.items():
    jax.ffi.register_ffi_target(f"avjax_conv3x3_{name}", jax.ffi.pycapsule(getattr(lib, symbol)),
                                platform="cpu")
  lib.AvjaxOnednnVersion.restype = ctypes.c_char_p
  return lib.AvjaxOnednnVersion().decode()


@functools.lru_cache(maxsize=None)
def _warn_once(reason: str) -> None:
  print(f"warning: avjax runs XLA's CPU convolutions: oneDNN's are unavailable ({reason}); "
        f"{ENV}=xla silences this", file=sys.stderr)


@functools.lru_cache(maxsize=None)
def _loaded() -> tuple[str, str]:
  """(oneDNN version, '') once the library is loaded and its targets registered; else ('', why
  it cannot be). Asked once per process: a failed build is not tried again at every layer."""
  try:
    return _load(), ""
  except (build.BuildError, OSError, AttributeError) as e:
    return "", (str(e).splitlines()[0] if str(e) else type(e).__name__)


def _unavailable_reason() -> str:
  return _loaded()[1]


def version() -> str:
  """The oneDNN version the kernels run on ('' when unavailable)."""
  return _loaded()[0]


def require() -> None:
  """Loads the library for a call asked for explicitly; OnednnUnavailable when it cannot."""
  reason = _unavailable_reason()
  if reason:
    raise OnednnUnavailable(f"oneDNN's kernels are unavailable: {reason}")


def enabled() -> bool:
  """Whether the towers' convolutions run on oneDNN here (decided at trace time)."""
  chosen = mode()
  if chosen == "xla" or jax.default_backend() != "cpu":
    return False
  reason = _unavailable_reason()
  if reason and chosen == "onednn":
    raise OnednnUnavailable(f"{ENV}=onednn, but oneDNN's kernels are unavailable: {reason}")
  if reason:
    _warn_once(reason)
  return not reason


def _out_hw(height: int, width: int, stride: int) -> tuple[int, int]:
  return -(-height // stride), -(-width // stride)


def _call(name: str, shape, *operands, stride: int) -> jax.Array:
  require()
  return jax.ffi.ffi_call(f"avjax_conv3x3_{name}", jax.ShapeDtypeStruct(shape, jnp.float32))(
      *operands, stride=np.int64(stride))


def _forward(x, kernel, stride):
  n, h, w, _ = x.shape
  return _call("forward", (n, *_out_hw(h, w, stride), kernel.shape[-1]), x, kernel,
               stride=stride)


def _input_grad(grad_out, kernel, x_shape, stride):
  # The batch is grad_out's: per shard it is the shard's, not x_shape's global one.
  return _call("input_grad", (grad_out.shape[0], *x_shape[1:]), grad_out, kernel,
               stride=stride)


def _kernel_grad(x, grad_out, stride):
  return _call("kernel_grad", (3, 3, x.shape[-1], grad_out.shape[-1]), x, grad_out,
               stride=stride)


# --- sharding: batch-split operands stay split; everything else is gathered ------------------

def _batch_axes(sharding) -> tuple:
  """The mesh axes that split an operand's leading (batch) dimension."""
  spec = getattr(sharding, "spec", None)
  if not spec or spec[0] is None:
    return ()
  return tuple(spec[0]) if isinstance(spec[0], tuple) else (spec[0],)


def _batch_split(mesh, axes, rank: int) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec(axes or None, *([None] * (rank - 1))))


def _replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def _per_shard_rule(fn, n_static: int):
  """custom_partitioning of fn(a, b, *statics): a's batch split kept, b replicated, the result
  split as a."""
  wrapped = custom_partitioning(fn, static_argnums=tuple(range(2, 2 + n_static)))

  def infer(*args):
    mesh, arg_shapes, result_shape = args[-3:]
    axes = _batch_axes(arg_shapes[0].sharding)
    return _batch_split(mesh, axes, len(result_shape.shape))

  def partition(*args):
    mesh, arg_shapes, result_shape = args[-3:]
    statics = args[:-3]
    axes = _batch_axes(arg_shapes[0].sharding)
    arg_shardings = (_batch_split(mesh, axes, 4), _replicated(mesh))
    result = _batch_split(mesh, axes, len(result_shape.shape))

    def lower(a, b):
      return fn(a, b, *statics)
    return mesh, lower, result, arg_shardings

  wrapped.def_partition(partition=partition, infer_sharding_from_operands=infer,
                        sharding_rule="n h w c, i j k o -> n p q r",
                        need_replication_factors=("h", "w", "c", "i", "j", "k", "o", "p",
                                                  "q", "r"))
  return wrapped


def _kernel_grad_partitioned():
  wrapped = custom_partitioning(_kernel_grad, static_argnums=(2,))

  def infer(stride, mesh, arg_shapes, result_shape):
    return _replicated(mesh)

  def partition(stride, mesh, arg_shapes, result_shape):
    axes = _batch_axes(arg_shapes[0].sharding)
    arg_shardings = (_batch_split(mesh, axes, 4), _batch_split(mesh, axes, 4))

    def lower(x, grad_out):
      local = _kernel_grad(x, grad_out, stride)
      return jax.lax.psum(local, axes) if axes else local
    return mesh, lower, _replicated(mesh), arg_shardings

  wrapped.def_partition(partition=partition, infer_sharding_from_operands=infer,
                        sharding_rule="n h w c, n p q o -> i j c o",
                        reduction_factors=("n",),
                        need_replication_factors=("h", "w", "c", "p", "q", "o", "i", "j"))
  return wrapped


_forward_partitioned = _per_shard_rule(_forward, 1)  # stride
_input_grad_partitioned = _per_shard_rule(_input_grad, 2)  # x_shape, stride
_kernel_grad_sharded = _kernel_grad_partitioned()


def forward(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
  """SAME 3x3 convolution [N, H, W, C] x [3, 3, C, O] -> [N, ceil(H/s), ceil(W/s), O]."""
  return _forward_partitioned(x, kernel, stride)


def input_grad(grad_out: jax.Array, kernel: jax.Array, x_shape: tuple, stride: int) -> jax.Array:
  """The gradient with respect to the input, of shape x_shape."""
  return _input_grad_partitioned(grad_out, kernel, tuple(x_shape), stride)


def kernel_grad(x: jax.Array, grad_out: jax.Array, stride: int) -> jax.Array:
  """The gradient with respect to the kernel, [3, 3, C, O], summed over the whole batch."""
  return _kernel_grad_sharded(x, grad_out, stride)
