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


VARIANTS = {
    "paper": paper,
    "demo": lambda: common.laptop_demo(paper(), "ave:demo"),  # avol:demo's sizes
    "tiny": lambda: common.smoke_test(paper(), "ave:tiny"),   # the tests' smoke run
}
