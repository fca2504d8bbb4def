"""Shared test set-up: parsed absl flags (Grain workers read them) and the embedded dataset."""

import pytest
from absl import flags

# Grain worker processes read absl flags; in tests nothing else parses them.
flags.FLAGS.mark_as_parsed()


@pytest.fixture(scope="session")
def embedded_dir() -> str:
  """The embedded real-media dataset, built once and cached ($AVJAX_DATA or ~/.cache/avjax)."""
  from data_pipeline import embedded  # pylint: disable=g-import-not-at-top
  return embedded.ensure_embedded()
