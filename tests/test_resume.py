"""Resuming a run safely: a damaged latest checkpoint falls back to the newest readable one,
a resume that would change the state or the data order is refused in one line, every start
keeps its config, and metrics.jsonl holds each step once after a resume."""

import json
import os
import shutil

import numpy as np
import pytest

from avjax import config as config_lib
from avjax import export as export_lib
from avjax.train import loop
from test_train import latest_step, saved_params


def _config(*overrides):
  return config_lib.get_config("avol:tiny", list(overrides))


def _damage(workdir: str, step: int) -> None:
  """A checkpoint whose array data is gone (a disk fault, a half-copied folder)."""
  state = os.path.join(workdir, "checkpoints", str(step), "state")
  for name in os.listdir(state):
    if name.startswith("ocdbt") or name == "d":
      shutil.rmtree(os.path.join(state, name))


def test_a_damaged_latest_checkpoint_falls_back_to_the_newest_readable_one(
    tmp_path, embedded_dir, capfd):
  workdir = str(tmp_path / "run")
  loop.train_and_evaluate(_config("train.num_steps=4", "train.checkpoint_every_steps=2"),
                          workdir)
  uninterrupted = saved_params(workdir, 4)
  _damage(workdir, 4)
  capfd.readouterr()
  loop.train_and_evaluate(_config("train.num_steps=4", "train.checkpoint_every_steps=2"),
                          workdir)
  err = capfd.readouterr().err
  assert "checkpoint step 4" in err and "cannot be read" in err
  assert "restored step 2 instead" in err
  # The damaged folder is kept aside, out of the way of new saves; steps 3-4 were trained
  # again from step 2 and its iterator, to the same parameters.
  assert os.path.isdir(os.path.join(workdir, "checkpoints_damaged", "4", "state"))
  assert latest_step(workdir) == 4
  again = saved_params(workdir, 4)
  for key in uninterrupted:
    np.testing.assert_array_equal(uninterrupted[key], again[key], err_msg=key)
  # No readable checkpoint at all: one line naming each step and why.
  _damage(workdir, 2)
  _damage(workdir, 4)
  with pytest.raises(export_lib.ExportError) as failed:
    export_lib.export(_config(), workdir, str(tmp_path / "export"))
  message = str(failed.value)
  assert message.startswith("no readable checkpoint in ") and "\n" not in message
  assert "step 4 (" in message and "step 2 (" in message


def test_a_resume_that_changes_the_data_order_is_refused_unless_allowed(tmp_path,
                                                                         embedded_dir):
  workdir = str(tmp_path / "run")
  loop.train_and_evaluate(_config("train.num_steps=2"), workdir)
  metrics = os.path.join(workdir, "metrics.jsonl")
  for override, field, old, new in (("train.batch_size=16", "train.batch_size", 8, 16),
                                    ("data.max_clips=40", "data.max_clips", 48, 40),
                                    ("model.width=0.125", "model.width", 0.0625, 0.125)):
    with pytest.raises(config_lib.ConfigError) as refused:
      loop.train_and_evaluate(_config("train.num_steps=3", override), workdir)
    message = str(refused.value)
    assert f"{field} was {old!r} for its checkpoints, now {new!r}" in message, message
    assert f"--allow_resume_change={field}" in message and "\n" not in message
  assert len(os.listdir(os.path.join(workdir, "configs"))) == 1  # refused starts wrote none
  # A run killed after logging step 3 but before saving it, its last line cut short: the
  # resume drops both and logs step 3 once.
  with open(metrics, "a") as f:
    f.write(json.dumps({"step": 3, "loss": 99.0}) + "\n" + '{"step": 4, "lo')
  loop.train_and_evaluate(_config("train.num_steps=3", "seed=1"), workdir,
                          allow_resume_change=["seed"])
  with open(metrics) as f:
    rows = [json.loads(line) for line in f]
  assert [r["step"] for r in rows] == [1, 2, 3] and rows[-1]["loss"] != 99.0
  # Each start's config is kept; config.json is the latest.
  starts = sorted(os.listdir(os.path.join(workdir, "configs")))
  assert len(starts) == 2 and starts[0].endswith("_from_step_0.json")
  assert starts[1].endswith("_from_step_2.json")
  with open(os.path.join(workdir, "configs", starts[0])) as f:
    assert json.load(f)["seed"] == 0
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["seed"] == 1
