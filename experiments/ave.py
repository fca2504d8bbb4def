"""AVE-Net ("Objects that Sound"): 128-d unit embeddings per tower, distance -> fc 1->2.

Each tower ends in two fully connected layers and L2 normalisation; the Euclidean distance
between the two embeddings, through a tiny fc 1->2, is the correspondence score, so the
embeddings themselves support cross-modal retrieval.

Run the laptop variant:  python -m avjax.main --experiment=ave:demo --workdir=/tmp/ave
"""

from experiments import common


def paper():
  """[OtS] Section 3: 224^2 frames, 257x200 log-spectrograms, stride-2 towers."""
  return common.paper_config("ave:paper", common.model_config("ave", stride=2))


def demo():
  """The laptop demo on the embedded dataset (the sizes of avol:demo)."""
  config = common.laptop_demo(paper())
  config.experiment = "ave:demo"
  return config


def tiny():
  """A smoke test of the whole path, for the tests."""
  config = common.smoke_test(paper())
  config.experiment = "ave:tiny"
  return config


VARIANTS = {"paper": paper, "demo": demo, "tiny": tiny}
