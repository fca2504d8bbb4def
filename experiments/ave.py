"""AVE-Net ("Objects that Sound"): 128-d unit embeddings per tower, distance -> fc 1->2.

Run the laptop variant:  python -m avjax.main --experiment=ave:demo --workdir=/tmp/ave
Variants: paper (default), demo, tiny.
"""

from experiments import common

VARIANTS = common.VARIANTS


def get_config(variant: str = "paper"):
  return common.base_config("ave", variant)
