"""Experiments by name, "name:variant" parsing and command-line overrides of any field.

The experiments are a plain dict of directly imported modules; each has
`get_config(variant) -> ml_collections.ConfigDict` and `VARIANTS`. Overrides come from
the command line as `--config.a.b=value`, typed by the field they replace.
"""

from typing import Sequence

import ml_collections

from avjax.errors import ConfigError
from experiments import ave, avol, l3

EXPERIMENTS = {"l3": l3, "ave": ave, "avol": avol}


def get_config(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
  """The config of `spec` = "name" or "name:variant", with `overrides` ("a.b=value") applied."""
  name, _, variant = spec.partition(":")
  if name not in EXPERIMENTS:
    raise ConfigError(f"unknown experiment '{name}'; experiments: {', '.join(EXPERIMENTS)}")
  module = EXPERIMENTS[name]
  variant = variant or "paper"
  if variant not in module.VARIANTS:
    raise ConfigError(f"unknown variant '{variant}' of experiment '{name}'; "
                      f"variants: {', '.join(module.VARIANTS)}")
  config = module.get_config(variant)
  for override in overrides:
    apply_override(config, override)
  return config


def _parse_value(text: str, like):
  """`text` parsed as the type of the value it replaces."""
  if isinstance(like, bool):
    if text.lower() in ("true", "1", "yes"):
      return True
    if text.lower() in ("false", "0", "no"):
      return False
    raise ValueError(f"expected true or false, got '{text}'")
  if isinstance(like, int):
    return int(text)
  if isinstance(like, float):
    return float(text)
  if isinstance(like, (tuple, list)):
    return tuple(item.strip() for item in text.split(",") if item.strip())
  return text


def apply_override(config: ml_collections.ConfigDict, override: str) -> None:
  """Sets one field from "a.b=value"; unknown keys and unparsable values raise ConfigError."""
  key, sep, text = override.partition("=")
  if not sep:
    raise ConfigError(f"override '{override}' is not of the form --config.KEY=VALUE")
  *parents, leaf = key.split(".")
  node, path = config, []
  for part in parents:
    if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
      raise ConfigError(f"unknown config section '{'.'.join(path + [part])}'; sections here: "
                        f"{', '.join(k for k in node if isinstance(node[k], ml_collections.ConfigDict))}")
    node, path = node[part], path + [part]
  if leaf not in node or isinstance(node[leaf], ml_collections.ConfigDict):
    fields = ", ".join(sorted(k for k in node if not isinstance(node[k], ml_collections.ConfigDict)))
    raise ConfigError(f"unknown config key '{key}'; keys of '{'.'.join(path) or 'config'}': {fields}")
  try:
    node[leaf] = _parse_value(text, node[leaf])
  except ValueError as err:
    raise ConfigError(f"bad value for --config.{key}: {err}") from None
