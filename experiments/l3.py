"""L3-Net ("Look, Listen and Learn"): stride 1 in both towers, concat -> fc128 -> fc2.

The towers' pooled 512-d features are concatenated and classified (corresponds or not) by
two fully connected layers; there is no joint embedding space. L3's sampling: every variant
moves a positive's sound up to 1 s from its frame (data.jitter_seconds; a negative's sound is
anywhere in another video anyway); the paper's spectrogram is 257 x 199 (48 kHz, 10 ms window,
hop 240, the frames that fit in 1 s without padding), against [OtS]'s 257 x 200.

Run the laptop variant:  python -m avjax.main --experiment=l3:demo --workdir=/tmp/l3
"""

from experiments import common


JITTER_SECONDS = 1.0  # [L3]: audio vs frame offset of up to 1 s


def _l3_sampling(config):
  config.data.jitter_seconds = JITTER_SECONDS
  return config


def paper():
  """[L3]: full resolution to conv4_2 (28x28 vision, 32x24 audio), so stride 1 in both towers;
  257 x 199 spectrograms."""
  config = common.paper_config("l3:paper", common.model_config("l3", stride=1))
  config.data.spec_frames = 199
  return _l3_sampling(config)


def _strided(experiment: str):
  """The small variants keep avol:demo's stride 2 and sizes, as they are tuned for it."""
  return _l3_sampling(common.paper_config(experiment, common.model_config("l3", stride=2)))


VARIANTS = {
    "paper": paper,
    "demo": lambda: common.laptop_demo(_strided("l3:demo"), "l3:demo"),
    "tiny": lambda: common.smoke_test(_strided("l3:tiny"), "l3:tiny"),  # the tests' smoke run
}
