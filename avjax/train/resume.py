"""What a resumed run must share with the run it continues, checked before it trains.

A checkpoint holds the state and the input iterator's position. Both are only meaningful for
the settings that made them: another seed, batch, dataset or worker count gives a different
data order (a restored iterator would silently skip or replay clips), another experiment or
width a different state. `identity` lists those settings; `check` compares them with the ones
recorded by the start that wrote the checkpoints and refuses a resume that changes any, in one
line naming the field and both values, unless the user allows that field by name.

Every start also keeps its whole config: WORKDIR/config.json is the latest one, and
WORKDIR/configs/ holds one file per start, never overwritten.
"""

import datetime
import hashlib
import json
import os
from typing import Iterable, Optional, Sequence

import ml_collections

from avjax import runtime
from avjax.errors import ConfigError

IDENTITY_FILE = "resume_identity.json"
# Config fields that fix the state's shape or the data order.
_FIELDS = ("experiment", "seed", "model", "train.batch_size", "train.per_device_batch_size",
           "train.negatives", "data")
# Data settings that change neither which clips are read nor in what order or form.
_DATA_FREE = ("cache_dir", "per_file_timeout_s", "probe_workers", "worker_buffer_batches",
              "decode_cache_mb", "decode_cache_max_seconds")


def _flatten(prefix: str, value) -> dict:
  if isinstance(value, (dict, ml_collections.ConfigDict)):
    out = {}
    for key, sub in dict(value).items():
      out.update(_flatten(f"{prefix}.{key}", sub))
    return out
  return {prefix: value}


def config_identity(config: ml_collections.ConfigDict) -> dict:
  """The config fields a resume must keep, flat: {"model.width": 0.25, ...}."""
  out = {}
  for field in _FIELDS:
    value = config
    for part in field.split("."):
      value = value[part]
    out.update(_flatten(field, value.to_dict() if hasattr(value, "to_dict") else value))
  for key in _DATA_FREE:
    out.pop(f"data.{key}", None)
  return json.loads(json.dumps(out))  # as it reads back from the file


def clips_fingerprint(clips: Sequence) -> str:
  """A hash of the training clip table: which segments, in which order, with which labels."""
  h = hashlib.sha1()
  for c in clips:
    h.update(f"{os.path.abspath(c.path)}|{c.audio_path}|{c.start:.3f}|{c.duration:.3f}|"
             f"{','.join(c.labels)}\n".encode("utf-8"))
  return h.hexdigest()[:16]


def _read(workdir: str) -> Optional[dict]:
  try:
    with open(os.path.join(workdir, IDENTITY_FILE)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def has_checkpoints(workdir: str) -> bool:
  directory = os.path.join(workdir, "checkpoints")
  return os.path.isdir(directory) and any(name.isdigit() for name in os.listdir(directory))


def check(workdir: str, now: dict, allowed: Iterable[str] = ()) -> None:
  """ConfigError (one line) when `now` changes a field recorded for the checkpoints of
  workdir, other than those in `allowed`. Fields the record lacks are not compared."""
  saved = _read(workdir)
  if saved is None or not has_checkpoints(workdir):
    return
  allowed = set(allowed)
  changed = [(k, saved[k], now[k]) for k in now
             if k in saved and saved[k] != now[k] and k not in allowed
             and not any(k.startswith(a + ".") for a in allowed)]
  if changed:
    field, old, new = changed[0]
    more = f" (and {len(changed) - 1} more: {', '.join(c[0] for c in changed[1:])})" \
        if len(changed) > 1 else ""
    raise ConfigError(
        f"cannot resume {os.path.abspath(workdir)}: {field} was {old!r} for its checkpoints, now "
        f"{new!r}{more}; this changes the state or the data order. Use a new --workdir, or "
        f"pass --allow_resume_change={','.join(c[0] for c in changed)} to resume anyway")


def record(config: ml_collections.ConfigDict, workdir: str, identity: dict,
           start_step: int) -> None:
  """Writes config.json, configs/<time>_from_step_<N>.json and the identity (process 0)."""
  os.makedirs(os.path.join(workdir, "configs"), exist_ok=True)
  stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
  text = config.to_json(indent=2)
  for path in (os.path.join(workdir, "configs", f"{stamp}_from_step_{start_step}.json"),
               os.path.join(workdir, "config.json")):
    runtime.write_atomic(path, text)
  runtime.write_atomic(os.path.join(workdir, IDENTITY_FILE), json.dumps(identity, indent=2))

