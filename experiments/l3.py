"""L3-Net ("Look, Listen and Learn"): stride 1 in both towers, concat -> fc128 -> fc2.

The towers' pooled 512-d features are concatenated and classified (corresponds or not) by
two fully connected layers; there is no joint embedding space.

Run the laptop variant:  python -m avjax.main --experiment=l3:demo --workdir=/tmp/l3
"""

from experiments import common


def paper():
  """[L3]: full resolution to conv4_2 (28x28 vision, 32x24 audio), so stride 1 in both towers."""
  return common.paper_config("l3:paper", common.model_config("l3", stride=1))


def demo():
  """The laptop demo on the embedded dataset, at avol:demo's sizes (stride 2, as avol)."""
  return common.laptop_demo(common.paper_config("l3:demo", common.model_config("l3", stride=2)))


def tiny():
  """A smoke test of the whole path, for the tests (stride 2, as the demo)."""
  return common.smoke_test(common.paper_config("l3:tiny", common.model_config("l3", stride=2)))


VARIANTS = {"paper": paper, "demo": demo, "tiny": tiny}
