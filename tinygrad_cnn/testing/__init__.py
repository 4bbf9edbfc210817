"""Tools to test gradients: `gradcheck`, and hypothesis strategies in `tinygrad_cnn.testing.strategies`
(imported on its own, since hypothesis is an optional extra)."""
from .gradcheck import GradcheckError, GradcheckReport, gradcheck

__all__ = ["gradcheck", "GradcheckError", "GradcheckReport"]
