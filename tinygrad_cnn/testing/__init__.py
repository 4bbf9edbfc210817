"""Tools to test gradients: `gradcheck`, `gradgradcheck` (second derivatives), and hypothesis strategies in `tinygrad_cnn.testing.strategies`
(imported on its own, since hypothesis is an optional extra)."""
from .gradcheck import GradcheckError, GradcheckReport, gradcheck
from .gradgradcheck import gradgradcheck

__all__ = ["gradcheck", "gradgradcheck", "GradcheckError", "GradcheckReport"]
