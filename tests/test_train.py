"""The trainer end to end on the `tiny` variants: every net trains and evaluates, resume is
exact, SIGTERM saves, divergence stops without saving, and 8 devices compute what 1 does."""

import json
import os
import signal
import subprocess
import sys
import time

import av
import limits
import browser
import numpy as np
import orbax.checkpoint as ocp
import pytest

from avjax import config as config_lib
from avjax.train import checkpoint as checkpoint_lib
from avjax.train import evaluation, loop
from avjax.visualise import eval_pictures
from data_pipeline import pipeline

EVAL_KEYS = ("avc_accuracy", "ndcg30/im-im", "ndcg30/aud-aud", "ndcg30/random",
             "quick_probe/audio_accuracy", "quick_probe/image_accuracy", "quick_probe/chance")


def _config(spec="avol:tiny", *overrides):
  return config_lib.get_config(spec, list(overrides))


def saved_params(workdir: str, step: int) -> dict:
  """The parameters of a saved checkpoint as a flat {path: array} dict."""
  manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"),
                                  item_names=("state", "data"))
  state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  manager.close()
  flat, _ = __import__("jax").tree_util.tree_flatten_with_path(state["state"]["params"])
  return {"/".join(str(k) for k in path): np.asarray(v) for path, v in flat}


def latest_step(workdir: str):
  manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
  step = manager.latest_step()
  manager.close()
  return step


@pytest.mark.parametrize("spec", ["l3:tiny", "ave:tiny"])
def test_each_net_trains_and_evaluates(spec, tmp_path, embedded_dir, monkeypatch):
  workdir = str(tmp_path / spec.replace(":", "_"))
  logged = loop.train_and_evaluate(_config(spec, "train.num_steps=2"), workdir)
  assert np.isfinite(logged["loss"]) and 0 <= logged["accuracy"] <= 1
  assert logged["clips_per_s"] > 0
  # L3-Net also gets [OtS] Table 1's L3 rows: cross-modal retrieval raw and after a CCA
  # fitted on the training split.
  config = _config(spec, *(["eval.evaluators=avc,retrieval,localisation,quick_probe,"
                            "cca_retrieval"] if spec == "l3:tiny" else []))
  evaluation_run = evaluation.evaluate_checkpoint(config, workdir)
  # The pictures are drawn from what the evaluation collected: nothing is decoded again.
  def no_decoding(*args, **kwargs):
    raise AssertionError("the pictures decoded a clip again")
  monkeypatch.setattr(pipeline, "decode_pair", no_decoding)
  eval_pictures.write_eval_pictures(config, evaluation_run, workdir)
  results = evaluation_run.results
  assert results["step"] == 2
  for key in EVAL_KEYS:
    assert key in results, key
  if spec == "l3:tiny":
    for key in ("raw_ndcg30/im-aud", "raw_ndcg30/aud-im", "cca_ndcg30/im-aud",
                "cca_ndcg30/aud-aud"):
      assert 0 < results[key] <= 1 and "ci95" in results["scoring"][key], key
    assert results["scoring"]["cca_ndcg30/im-aud"]["gain_over"] == "cca_ndcg30/random"
  with open(os.path.join(workdir, "eval", "metrics.json")) as f:
    assert json.load(f)["avc_accuracy"] == results["avc_accuracy"]
  # No localisation map: retrieval pictures and the report, no heat maps or video.
  written = set(os.listdir(os.path.join(workdir, "eval")))
  assert {"report.html", "retrieval_im-im.png", "retrieval_aud-aud.png"} <= written
  assert not written & {"heatmaps.png", "localisation.mp4"}
  assert ("retrieval_im-aud.png" in written) == (spec == "ave:tiny")  # L3: no joint space


def _run_main(*args, **kwargs):
  return subprocess.run([sys.executable, "-m", "avjax.main", *args], capture_output=True,
                        text=True, check=False, **kwargs)


def test_command_line_trains_then_evaluates_avol(tmp_path, embedded_dir):
  workdir = str(tmp_path / "avol")
  proc = _run_main("--experiment=avol:tiny", f"--workdir={workdir}", timeout=limits.HANG_S)
  assert proc.returncode == 0, proc.stderr[-2000:]
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  assert [r["step"] for r in rows] == [1, 2, 3, 4]
  for key in ("loss", "accuracy", "learning_rate", "grad_norm", "param_norm", "clips_per_s",
              "data_wait_fraction"):
    assert all(np.isfinite(r[key]) for r in rows), key
  assert all(0 <= r["data_wait_fraction"] <= 1 for r in rows)
  assert latest_step(workdir) == 4

  proc = _run_main("--experiment=avol:tiny", f"--workdir={workdir}", "--mode=eval", timeout=limits.HANG_S)
  assert proc.returncode == 0, proc.stderr[-2000:]
  with open(os.path.join(workdir, "eval", "metrics.json")) as f:
    results = json.load(f)
  for key in EVAL_KEYS + ("ndcg30/im-aud", "ndcg30/aud-im", "loc/ciou_ap50", "loc/auc",
                          "loc/pointing", "loc/distractor_pick",
                          "baseline/centre/loc/pointing"):
    assert key in results, key
  assert "avc_accuracy" in proc.stdout and "baseline" in proc.stdout
  _check_pictures(os.path.join(workdir, "eval"), tmp_path)

  # Evaluating a step that does not exist: one line naming the steps there are.
  proc = _run_main("--experiment=avol:tiny", f"--workdir={workdir}", "--mode=eval",
                   "--checkpoint=3", timeout=limits.HANG_S)
  assert proc.returncode != 0 and "no checkpoint at step 3" in proc.stderr
  assert "Traceback" not in proc.stderr


PICTURES = ("training_curves.png", "heatmaps.png", "matched_mismatched.png",
            "retrieval_im-im.png", "retrieval_im-aud.png", "retrieval_aud-im.png",
            "retrieval_aud-aud.png")


def _check_pictures(eval_dir: str, tmp_path) -> None:
  """AVOL-Net's eval pictures, video and report exist, and the report renders in Chromium
  with every picture, the video, the sound players and the metrics table."""
  for name in PICTURES + ("localisation.mp4", "report.html"):
    assert os.path.getsize(os.path.join(eval_dir, name)) > 1000, name
  with av.open(os.path.join(eval_dir, "localisation.mp4")) as container:
    assert {s.type for s in container.streams} == {"video", "audio"}
    assert sum(1 for _ in container.decode(video=0)) >= 8
  dom = browser.rendered_dom(os.path.join(eval_dir, "report.html"))
  assert dom.count("<img") == len(PICTURES) and dom.count("<video") == 1
  assert dom.count("<audio") >= 6 and "<td>loc/pointing</td>" in dom
  shot = browser.screenshot(os.path.join(eval_dir, "report.html"), str(tmp_path / "r.png"))
  assert shot.std() > 20  # pictures drawn, not a blank page


def test_resumed_run_matches_uninterrupted_run(tmp_path, embedded_dir):
  whole, split = str(tmp_path / "whole"), str(tmp_path / "split")
  loop.train_and_evaluate(_config("avol:tiny", "train.num_steps=4"), whole)
  loop.train_and_evaluate(_config("avol:tiny", "train.num_steps=2"), split)
  assert latest_step(split) == 2
  loop.train_and_evaluate(_config("avol:tiny", "train.num_steps=4"), split)  # resumes at 2
  a, b = saved_params(whole, 4), saved_params(split, 4)
  assert a.keys() == b.keys()
  for key in a:  # bit-identical: no batch replayed, none skipped, same rng
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  with open(os.path.join(split, "metrics.jsonl")) as f:
    assert [json.loads(line)["step"] for line in f] == [1, 2, 3, 4]


def test_sigterm_to_run_sh_train_saves_and_exits_143(tmp_path, embedded_dir):
  """SIGTERM sent to `./run.sh train` (as a scheduler sends it) reaches the trainer, which
  saves the step it reached and exits 143 ("stopped, resumable"), not 0; the shared memory of
  the batches its workers had ready is released (no resource_tracker warning)."""
  workdir = str(tmp_path / "preempted")
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.Popen(
      ["bash", os.path.join(repo, "run.sh"), "train", "--experiment=avol:tiny",
       f"--workdir={workdir}", "--config.train.num_steps=100000",
       "--config.train.checkpoint_every_steps=100000",
       "--config.data.num_workers=2"],  # worker processes must not keep the run alive
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      env=dict(os.environ, AVJAX_VENV=sys.prefix))
  metrics = os.path.join(workdir, "metrics.jsonl")
  deadline = time.monotonic() + limits.HANG_S
  while not (os.path.exists(metrics) and os.path.getsize(metrics) > 0):
    assert proc.poll() is None and time.monotonic() < deadline, "training did not start"
    time.sleep(0.5)
  proc.send_signal(signal.SIGTERM)  # to bash's pid: run.sh must have handed it to Python
  _, err = proc.communicate(timeout=limits.HANG_S)
  assert proc.returncode == 143, err[-2000:]
  step = latest_step(workdir)
  assert step is not None and step >= 1
  assert f"avjax: stopped at step {step} of 100000" in err and "run the same command" in err
  with open(metrics) as f:
    assert json.loads(f.readlines()[-1])["step"] == step
  # Every batch the workers had ready was in shared memory, and was released.
  assert "leaked shared_memory" not in err, err[-2000:]


def test_a_stop_during_validation_or_a_save_saves_the_step_reached(tmp_path, embedded_dir,
                                                                   monkeypatch):
  """SIGTERM while the validation of a step that is not a save step runs: that step is saved
  all the same, and the trainer says it stopped (exit code 143), resumable. SIGTERM during a
  save: the save completes, the run stops at that step and saves nothing twice."""
  workdir = str(tmp_path / "stopped_in_eval")
  real_run = loop.evaluate.run_evaluators

  def run_then_sigterm(evaluators, predict_fn):
    os.kill(os.getpid(), signal.SIGTERM)  # arrives while the validation runs
    return real_run(evaluators, predict_fn)

  monkeypatch.setattr(loop.evaluate, "run_evaluators", run_then_sigterm)
  with pytest.raises(loop.TrainingStopped, match="stopped at step 2 of 4") as stopped:
    loop.train_and_evaluate(_config("avol:tiny", "train.num_steps=4", "eval.every_steps=2",
                                    "train.checkpoint_every_steps=100"), workdir)
  assert stopped.value.exit_code == 143
  assert latest_step(workdir) == 2

  monkeypatch.setattr(loop.evaluate, "run_evaluators", real_run)
  real_save, saves = checkpoint_lib.Checkpointer.save, []

  def sigterm_then_save(self, step, state, data_iterator):
    saves.append(step)
    os.kill(os.getpid(), signal.SIGTERM)  # arrives while the save of this step runs
    return real_save(self, step, state, data_iterator)

  monkeypatch.setattr(checkpoint_lib.Checkpointer, "save", sigterm_then_save)
  with pytest.raises(loop.TrainingStopped, match="stopped at step 3 of 8") as stopped:
    loop.train_and_evaluate(_config("avol:tiny", "train.num_steps=8", "eval.every_steps=0",
                                    "train.checkpoint_every_steps=3"), workdir)
  assert stopped.value.exit_code == 143 and saves == [3]
  assert latest_step(workdir) == 3


@pytest.mark.parametrize("override, expected", [
    ("train.batch_size=0", "train.batch_size=0; it must be at least 1"),
    ("train.log_every_steps=0", "train.log_every_steps=0; it must be at least 1"),
    ("train.checkpoint_every_steps=0", "train.checkpoint_every_steps=0; it must be at least 1"),
    ("train.keep_checkpoints=0", "train.keep_checkpoints=0; it must be at least 1"),
    ("train.keep_checkpoints=-1", "train.keep_checkpoints=-1; it must be at least 1"),
    ("eval.batch_size=0", "eval.batch_size=0; it must be at least 1"),
    ("eval.every_steps=-5", "eval.every_steps=-5; it must be at least 0"),
    ("data.num_workers=-1", "data.num_workers=-1; it must be at least 0"),
    ("data.frame_grid=false,data.shortcut_control=true", "it needs data.frame_grid=true"),
    ("data.shortcut_control=true,train.negatives=batch", "use train.negatives=pairs"),
])
def test_out_of_range_settings_are_one_line_before_any_work(override, expected, tmp_path):
  with pytest.raises(config_lib.ConfigError) as err:
    loop.train_and_evaluate(_config("avol:tiny", *override.split(",")), str(tmp_path / "w"))
  assert expected in str(err.value) and "\n" not in str(err.value)
  assert not os.path.exists(tmp_path / "w")  # nothing was started


def test_a_workdir_that_is_a_file_is_one_line(tmp_path):
  path = tmp_path / "file"
  path.write_text("not a folder")
  with pytest.raises(config_lib.ConfigError, match="is a file; give a folder"):
    loop.train_and_evaluate(_config("avol:tiny"), str(path))
  with pytest.raises(config_lib.ConfigError, match="is a file; give a folder"):
    evaluation.evaluate_checkpoint(_config("avol:tiny"), str(path))


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path, embedded_dir):
  workdir = str(tmp_path / "diverges")
  loop.train_and_evaluate(_config("avol:tiny", "train.num_steps=2"), workdir)
  good = saved_params(workdir, 2)
  with pytest.raises(loop.TrainingDiverged, match="last good checkpoint is step 2"):
    loop.train_and_evaluate(_config("avol:tiny", "train.num_steps=4",
                                    "train.learning_rate=inf", "train.checkpoint_every_steps=1"),
                            workdir)
  assert latest_step(workdir) == 2
  after = saved_params(workdir, 2)
  for key in good:
    assert np.all(np.isfinite(after[key]))
    np.testing.assert_array_equal(good[key], after[key])


_DUMP = """
import sys, numpy as np, jax
from avjax import config as config_lib
from avjax.train import loop
sys.path.insert(0, {tests!r})
from test_train import saved_params
from avjax.models import conv
loop.train_and_evaluate(config_lib.get_config("avol:tiny", ["train.num_steps=2"]), {workdir!r})
kernels = conv.choose_kernels(np.ones((1, 3, 3, 1), np.float32), np.ones((3, 3, 1, 1), np.float32))
np.savez({out!r}, devices=jax.device_count(), kernels=kernels, **saved_params({workdir!r}, 2))
"""


def _train_on_devices(tmp_path, devices: int) -> dict:
  workdir, out = str(tmp_path / f"dev{devices}"), str(tmp_path / f"dev{devices}.npz")
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  code = _DUMP.format(tests=os.path.dirname(__file__), workdir=workdir, out=out)
  proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                        timeout=limits.HANG_S, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return dict(np.load(out))


def test_eight_devices_compute_what_one_device_computes(tmp_path, embedded_dir):
  one, eight = _train_on_devices(tmp_path, 1), _train_on_devices(tmp_path, 8)
  assert one.pop("devices") == 1 and eight.pop("devices") == 8
  # the suite runs on oneDNN's kernels (conftest), per shard on eight devices
  assert one.pop("kernels") == eight.pop("kernels") == "onednn"
  for key in one:  # same global batch; only the reduction order differs
    np.testing.assert_allclose(one[key], eight[key], rtol=1e-4, atol=3e-5, err_msg=key)


def test_tiny_net_learns_correspondence_on_a_small_slice(tmp_path, embedded_dir):
  """A change that breaks learning (loss, labels, pairing, optimiser) fails here: on 8 training
  clips, 150 steps take AVC accuracy on those clips' fixed eval pairs well above chance."""
  workdir = str(tmp_path / "learns")
  overrides = ["data.max_clips=8", "data.augment=false", "train.num_steps=150",
               "train.negatives=batch", "train.checkpoint_every_steps=1000",
               "train.log_every_steps=50", "data.decode_cache_mb=64"]
  loop.train_and_evaluate(_config("avol:tiny", *overrides), workdir)
  results = evaluation.evaluate_checkpoint(_config("avol:tiny", *overrides), workdir,
                                           split="train").results
  assert results["avc_accuracy"] >= 0.75, results["avc_accuracy"]
