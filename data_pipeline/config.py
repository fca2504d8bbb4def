"""Default settings of the data pipeline; experiments override fields of this ConfigDict."""

import ml_collections


def default_data_config() -> ml_collections.ConfigDict:
  """The paper-size data settings (Objects that Sound: 224^2 frames, 257x200 spectrograms)."""
  return ml_collections.ConfigDict(dict(
      root="",              # "" -> the embedded dataset (python -m embedded_dataset)
      format="",            # "" -> detected from the files under root
      cache_dir="",         # "" -> $AVJAX_DATA or ~/.cache/avjax
      max_clips=0,          # 0 -> all clips; small variants cap the train split
      # Audio: 1 s at sample_rate -> log-magnitude STFT, freq x time.
      sample_rate=48000,
      audio_seconds=1.0,
      n_fft=512,
      win_length=480,
      hop_length=240,
      spec_frames=200,
      log_eps=1e-7,
      # Image: resize to resize_size, crop image_size.
      resize_size=256,
      image_size=224,
      # Pair sampling.
      frame_grid=True,      # audio centres on multiples of 1/fps (False: all off the grid)
      # [OtS]'s shortcut: positives on the grid, negatives off it, so that the encoder's
      # frame-alignment artefacts tell them apart (needs frame_grid and train.negatives=pairs;
      # evaluate with avc_shortcut).
      shortcut_control=False,
      jitter_seconds=0.0,   # L3: audio vs frame offset up to this many seconds
      # Augmentation (train only).
      augment=True,
      flip=True,
      brightness=0.2,
      saturation=0.2,
      gain=0.1,
      # Decoded-clip cache per worker (MB; 0 = off): for small datasets read over and over.
      decode_cache_mb=0,
      decode_cache_max_seconds=12.0,
      # Workers and guards.
      num_workers=2,
      # Batches each worker keeps ready: absorbs the jitter of decodes and of a shared CPU.
      worker_buffer_batches=4,
      # Threads each worker (or, without workers, the trainer) maps examples with; more help
      # where decoding releases the GIL on many cores, fewer where Python holds it.
      threads_per_worker=2,
      per_file_timeout_s=20.0,
      probe_workers=0,  # processes probing a dataset's new files (0: one per core)
  ))


def default_pack_config() -> ml_collections.ConfigDict:
  """How `python -m data_pipeline.pack` stores clips (data_pipeline.packed)."""
  return ml_collections.ConfigDict(dict(
      short_side=256,        # frames shrunk so their short side is at most this (0: as decoded)
      jpeg_quality=90,
      # Frames kept per second of video: 0 keeps every frame (the packed examples are then
      # the video pipeline's); N > 0 keeps the frames shown at multiples of 1/N s (fewer bytes;
      # the clip's frame grid, where sounds are centred, becomes that grid).
      frames_per_second=0,
      clips_per_shard=128,
      # ArrayRecord's compression of the records: "uncompressed" reads fastest (JPEG is
      # compressed already); "zstd:1" or "brotli:6" shrink the PCM sound by about half.
      compression="uncompressed",
  ))
