"""Gradient homes: a kernel writes a parameter's gradient straight into the optimizer's flat buffer."""
import sys
import types


def _references_of_a_free_home():
    holder = types.SimpleNamespace(value=(object(),))
    holder.listed = [holder.value[0]]
    local = holder.value[0]
    return sys.getrefcount(local)


# NOTE: what sys.getrefcount says of a gradient home that only its parameter (in a tuple), its
# optimizer (a list) and a local variable hold
_FREE_HOME = _references_of_a_free_home()


class GradientHomes:
    """A mixin for kernels (Function subclasses) that may write their parameters' gradients in place."""

    def grad_home(self, i, shape, dtype):
        """The array that input i's gradient may be written into (with out=), or None: the view of an
        optimizer's flat gradient buffer that is that parameter's (kernels/optim.py), while it is free
        (the parameter has no gradient yet, and nothing else holds the view or another view of the
        buffer) and of this shape and dtype.

        NOTE: a kernel that writes a parameter's gradient there spares the optimizer gathering the
        gradients into its buffer, one copy per parameter (a launch each on a GPU); backward() then
        keeps the array as the gradient without a copy (autograd.accumulate)."""
        parent = self.parents[i]
        if parent.grad_home is None or parent.grad is not None or not self.needs_input_grad[i]:
            return None
        home, buffer_refs, device = parent.grad_home
        if device != parent.device or home.shape != tuple(shape) or home.dtype != dtype:
            return None  # (a model moved since the optimizer laid it out: its next step lays it out again)
        if sys.getrefcount(home) > _FREE_HOME or sys.getrefcount(home.base) > buffer_refs:
            return None  # held elsewhere, or a view of the buffer is
        return home
