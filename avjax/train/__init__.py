"""The one trainer for all three nets: state, step, checkpoints, loop."""
