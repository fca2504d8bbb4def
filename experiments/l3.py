"""L3-Net ("Look, Listen and Learn"): stride 1 in both towers, concat -> fc128 -> fc2.

The towers' pooled 512-d features are concatenated and classified (corresponds or not) by
two fully connected layers; there is no joint embedding space.

Run the laptop variant:  python -m avjax.main --experiment=l3:demo --workdir=/tmp/l3
"""

from experiments import common


def paper():
  """[L3]: full resolution to conv4_2 (28x28 vision, 32x24 audio), so stride 1 in both towers."""
  return common.paper_config("l3:paper", common.model_config("l3", stride=1))


def _strided(experiment: str):
  """The small variants keep avol:demo's stride 2, as its sizes are tuned for it."""
  return common.paper_config(experiment, common.model_config("l3", stride=2))


VARIANTS = {
    "paper": paper,
    "demo": lambda: common.laptop_demo(_strided("l3:demo"), "l3:demo"),
    "tiny": lambda: common.smoke_test(_strided("l3:tiny"), "l3:tiny"),  # the tests' smoke run
}
