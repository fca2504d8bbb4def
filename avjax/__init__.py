"""avjax: self-supervised audio-visual learning in JAX/Flax (L3-Net, AVE-Net, AVOL-Net).

`avjax.load(export_dir)` opens an inference export (see avjax/export.py); the import is deferred
so that `import avjax` stays light.
"""

__version__ = "0.1.0"  # keep equal to setup.cfg's version


def load(export_dir: str):
  """The inference export in export_dir (an avjax.export.Exported); raises ExportError."""
  from avjax import export  # pylint: disable=g-import-not-at-top
  return export.load(export_dir)


def __getattr__(name: str):
  if name == "ExportError":  # lazily, like load
    from avjax import export  # pylint: disable=g-import-not-at-top
    return export.ExportError
  raise AttributeError(f"module 'avjax' has no attribute '{name}'")
