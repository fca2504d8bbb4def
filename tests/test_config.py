"""Experiments, variants and command-line overrides; user mistakes give one line, no traceback."""

import subprocess
import sys

import pytest

from avjax import config as config_lib
from data_pipeline import media
from avjax.errors import ConfigError
import limits


@pytest.mark.parametrize("name", ["l3", "ave", "avol"])
@pytest.mark.parametrize("variant", ["paper", "demo", "tiny"])
def test_every_experiment_and_variant_builds(name, variant):
  config = config_lib.get_config(f"{name}:{variant}")
  assert config.model.name == name
  assert config.experiment == f"{name}:{variant}"


def test_paper_is_the_default_variant_and_l3_keeps_stride_one():
  assert config_lib.get_config("avol").to_dict() == config_lib.get_config("avol:paper").to_dict()
  l3, ave = config_lib.get_config("l3"), config_lib.get_config("ave")
  assert (l3.model.vision_stride, l3.model.audio_stride) == (1, 1)
  assert (ave.model.vision_stride, ave.model.audio_stride) == (2, 2)
  assert l3.data.sample_rate == 48000 and l3.data.image_size == 224


def test_l3_has_its_papers_spectrogram_jitter_and_conv4_2_grid():
  import jax  # pylint: disable=g-import-not-at-top
  from avjax.models import build_model, nets  # pylint: disable=g-import-not-at-top
  from avjax.train import state  # pylint: disable=g-import-not-at-top
  l3, ave = config_lib.get_config("l3"), config_lib.get_config("ave")
  assert media.spectrogram_shape(l3.data) == (257, 199, 1)  # [L3]; [OtS] 257 x 200
  assert media.spectrogram_shape(ave.data) == (257, 200, 1)
  assert all(config_lib.get_config(f"l3:{v}").data.jitter_seconds == 1.0
             for v in ("paper", "demo", "tiny"))
  assert ave.data.jitter_seconds == 0.0
  # Shapes only (nothing is compiled): conv4_2 of the audio tower is L3's 32 x 24 x 512.
  model = build_model(l3.model)
  image, audio = state.dummy_inputs(l3.data)
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), image, audio))
  conv4_2 = jax.eval_shape(lambda v: model.apply(v, audio, method=nets.AVNet.audio_probe_map),
                           variables)
  assert conv4_2.shape == (1, 32, 24, 512)


def test_overrides_are_typed_by_the_field_they_replace():
  config = config_lib.get_config("avol:tiny", [
      "train.batch_size=64", "train.learning_rate=3e-4", "data.augment=false",
      "data.root=/data/videos", "eval.evaluators=avc,quick_probe"])
  assert config.train.batch_size == 64 and isinstance(config.train.batch_size, int)
  assert config.train.learning_rate == pytest.approx(3e-4)
  assert config.data.augment is False
  assert config.data.root == "/data/videos"
  assert tuple(config.eval.evaluators) == ("avc", "quick_probe")


def test_evaluator_blocks_are_overridden_like_any_section():
  config = config_lib.get_config("avol:demo", ["eval.retrieval.k=5", "eval.quick_probe.c=0.5"])
  assert config.eval.retrieval.k == 5 and isinstance(config.eval.retrieval.k, int)
  assert config.eval.quick_probe.c == 0.5
  assert config.eval.avc.frames_per_clip == 10  # the demo variants' setting
  assert config_lib.get_config("avol").eval.avc.frames_per_clip == 1
  assert config_lib.ConfigError is ConfigError


def test_an_experiment_module_outside_the_repository_by_dotted_name(tmp_path, monkeypatch):
  (tmp_path / "my_lab").mkdir()
  (tmp_path / "my_lab" / "__init__.py").write_text("")
  (tmp_path / "my_lab" / "wide_avol.py").write_text(
      "from experiments import avol\n"
      "def small():\n"
      "  config = avol.VARIANTS['tiny']()\n"
      "  config.model.width = 0.5\n"
      "  return config\n"
      "VARIANTS = {'small': small}\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  config = config_lib.get_config("my_lab.wide_avol", ["train.num_steps=7"])  # first variant
  assert config.model.width == 0.5 and config.train.num_steps == 7
  assert config.model.name == "avol"
  with pytest.raises(config_lib.ConfigError, match="cannot import experiment module 'my_lab.nope'"):
    config_lib.get_config("my_lab.nope")


def test_the_core_imports_only_the_experiment_asked_for():
  code = ("import sys; from avjax import config; config.get_config('ave:tiny'); "
          "print(sorted(m for m in sys.modules if m.startswith('experiments.')))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=limits.QUICK_HANG_S, check=True).stdout
  assert out.strip() == "['experiments.ave', 'experiments.common']"


@pytest.mark.parametrize("spec, overrides, expected", [
    ("nope", [], "unknown experiment 'nope'; experiments: l3, ave, avol"),
    ("avol:huge", [], "unknown variant 'huge' of experiment 'avol'; variants: paper, demo, tiny"),
    ("avol", ["train.batchsize=3"], "unknown config key 'train.batchsize'"),
    ("avol", ["trian.batch_size=3"], "unknown config section 'trian'"),
    ("avol", ["train.batch_size=many"], "bad value for --config.train.batch_size"),
    ("avol", ["train.batch_size"], "is not of the form --config.KEY=VALUE"),
    ("avol", ["eval.retrieval.kk=3"],
     "unknown config key 'eval.retrieval.kk'; keys of 'eval.retrieval': db_chunk, distance, k, query_chunk"),
    ("avol", ["eval.ndcg_k=5"], "unknown config key 'eval.ndcg_k'"),  # now eval.retrieval.k
])
def test_mistakes_raise_one_line_naming_what_exists(spec, overrides, expected):
  with pytest.raises(config_lib.ConfigError) as err:
    config_lib.get_config(spec, overrides)
  assert expected in str(err.value)
  assert "\n" not in str(err.value)


def _main(*args):
  return subprocess.run([sys.executable, "-m", "avjax.main", *args], capture_output=True,
                        text=True, timeout=limits.QUICK_HANG_S, check=False)


@pytest.mark.parametrize("args, expected", [
    (["--experiment=avl", "--workdir=/tmp/x"], "avjax: unknown experiment 'avl'; experiments:"),
    (["--experiment=avol:big", "--workdir=/tmp/x"], "variants: paper, demo, tiny"),
    (["--experiment=avol:tiny", "--workdir=/tmp/x", "--config.train.nope=1"],
     "avjax: unknown config key 'train.nope'; keys of 'train':"),
    (["--workdir=/tmp/x"], "avjax: --experiment is required"),
    (["--experiment=avol", "--mode=fly", "--workdir=/tmp/x"], "avjax: "),
    (["--experiment=avol:tiny", "--workdir=/tmp/x", "--config.model.dtype=float16"],
     "avjax: model.dtype='float16'; use one of auto, float32, bfloat16"),
])
def test_command_line_mistakes_exit_with_one_line(args, expected):
  proc = _main(*args)
  assert proc.returncode != 0
  assert expected in proc.stderr
  assert "Traceback" not in proc.stderr
