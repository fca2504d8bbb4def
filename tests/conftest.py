"""Shared test set-up: parsed absl flags (Grain workers read them) and the embedded dataset."""

import os

import pytest
from absl import flags

# Compiled steps are cached on disk and shared by the tests' processes: the tiny nets are
# compiled once per suite run, not once per test.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.expanduser("~/.cache/avjax/jax-tests"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

# The towers' convolutions run on oneDNN's kernels throughout, the subprocesses' (eight fake
# devices, two processes) included, so a library that fails to build fails the suite instead
# of falling back unseen. Where oneDNN cannot be built, AVJAX_CONV_KERNELS=auto (or xla) runs
# the suite on XLA's kernels. tests/test_onednn.py covers the fallback itself.
os.environ.setdefault("AVJAX_CONV_KERNELS", "onednn")

# Grain worker processes read absl flags; in tests nothing else parses them.
flags.FLAGS.mark_as_parsed()


@pytest.fixture(scope="session")
def embedded_dir() -> str:
  """The embedded real-media dataset, built once and cached ($AVJAX_DATA or ~/.cache/avjax)."""
  from embedded_dataset import build  # pylint: disable=g-import-not-at-top
  return build.ensure_embedded()
