"""AVOL-Net ("Objects that Sound"): audio embedding . 14x14 vision vectors -> map -> max (MIL).

Run the laptop variant:  python -m avjax.main --experiment=avol:demo --workdir=/tmp/avol
Variants: paper (default), demo, tiny.
"""

from experiments import common

VARIANTS = common.VARIANTS


def get_config(variant: str = "paper"):
  return common.base_config("avol", variant)
