"""Errors whose message is one line for the user; the entry points print them without a traceback."""


class ConfigError(ValueError):
  """A bad experiment name, variant, override or setting; the message is one line for the user."""
