"""L3-Net ("Look, Listen and Learn"): stride 1 in both towers, concat -> fc128 -> fc2.

Run the laptop variant:  python -m avjax.main --experiment=l3:demo --workdir=/tmp/l3
Variants: paper (default), demo, tiny.
"""

from experiments import common

VARIANTS = common.VARIANTS


def get_config(variant: str = "paper"):
  config = common.base_config("l3", variant)
  if variant == "paper":  # L3 keeps full resolution: conv4_2 is 28x28 (vision), 32x24 (audio).
    config.model.vision_stride = config.model.audio_stride = 1
  return config
