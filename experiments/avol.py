"""AVOL-Net ("Objects that Sound"): audio embedding . 14x14 vision vectors -> map -> max (MIL).

The vision tower keeps a 14x14 grid of 128-d vectors (conv + 1x1 convs, no pooling); the
audio tower's 128-d embedding is compared with each, giving a map of where the sound is; the
map's maximum (multiple-instance learning) is the correspondence score.

Run the laptop variant:  python -m avjax.main --experiment=avol:demo --workdir=/tmp/avol
"""

from experiments import common


def paper():
  """[OtS] Section 4: 224^2 frames, 257x200 log-spectrograms, stride-2 towers; evaluated also
  on the extended localisation benchmarks (non-sounding pairs, negative audio)."""
  config = common.paper_config("avol:paper", common.model_config("avol", stride=2))
  config.eval.evaluators = tuple(config.eval.evaluators) + ("extended",)
  return config


VARIANTS = {
    "paper": paper,
    # What `./run.sh demo` trains on the embedded dataset (8-27 min on 2 CPU cores).
    "demo": lambda: common.laptop_demo(paper(), "avol:demo"),
    "tiny": lambda: common.smoke_test(paper(), "avol:tiny"),  # the tests' smoke run
}
