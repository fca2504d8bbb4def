"""Flax Linen modules: the conv towers, the three heads and the nets that join them."""

from avjax.models.nets import AVNet, build_model

__all__ = ["AVNet", "build_model"]
