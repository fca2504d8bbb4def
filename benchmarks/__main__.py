"""`python -m benchmarks [FLAGS]` runs the step benchmark (benchmarks/step.py) with its flags."""

from absl import app, flags

from benchmarks import step

if __name__ == "__main__":
  # --help prints the main module's docstring and key flags: make them the step benchmark's.
  flags.adopt_module_key_flags(step)
  __doc__ = step.__doc__  # pylint: disable=redefined-builtin
  app.run(step.main)
