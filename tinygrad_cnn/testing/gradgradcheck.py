"""Check a function's second derivative: the gradient of its gradient, against central differences."""
import numpy

from ..autograd import enable_grad
from ..higher_order import grad
from ..tensor import Tensor, concatenate
from .gradcheck import GradcheckError, independent_stream, gradcheck


def gradgradcheck(fn, inputs, grad_outputs=None, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=False, seed=0,
                  n_directions=1, nonsmooth="raise"):
    """Check the derivative of backward() of `fn(*inputs)`, as recorded with create_graph=True, against
    central differences of that backward; return True or raise GradcheckError.

    With v the upstream gradient of fn's output (`grad_outputs`, else random), the first-order
    gradients G(x, v) = v . dfn/dx of the inputs that require a gradient are a function of the inputs
    and of v; gradcheck then checks G's own gradient, for a random upstream gradient of G, against
    (G(x + eps) - G(x - eps)) / 2 eps in float64. Random at both levels: d/dx sum(d/dx fn) could
    miss an error a random combination shows. The derivative in v checks that the recorded backward
    gives the first derivative too; the derivative in x is the second derivative proper (a
    Hessian-vector product, for a scalar fn). Arguments as for gradcheck; inputs are copied to float64."""
    inputs = list(inputs)
    probe = [Tensor(x.data, device=x.device, dtype="float64", requires_grad=x.requires_grad)
             if isinstance(x, Tensor) and x.dtype.kind == "f" else x for x in inputs]
    wants = [i for i, x in enumerate(probe) if isinstance(x, Tensor) and x.requires_grad]
    if not wants:
        raise ValueError("gradgradcheck: no input requires a gradient; pass tensors with requires_grad=True")
    out = fn(*probe)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradgradcheck: fn must return a Tensor, got {type(out).__name__}")
    if grad_outputs is None:
        v = independent_stream(seed + 1).standard_normal(out.shape)  # NOTE: a stream apart from gradcheck's own (seed)
    else:
        v = grad_outputs.numpy() if isinstance(grad_outputs, Tensor) else numpy.asarray(grad_outputs)
        if v.shape != out.shape:
            raise ValueError(f"gradgradcheck: grad_outputs has shape {v.shape}, fn's output {out.shape}")
    v = Tensor(v, device=out.device, dtype="float64", requires_grad=True)
    n = len(inputs)

    def first_derivatives(*args):
        xs, upstream = args[:n], args[n]
        with enable_grad():  # NOTE: gradcheck evaluates under no_grad; the gradient needs fn's graph
            y = fn(*xs)
            targets = [xs[i] for i in wants]
            grads = grad(y, targets, upstream, create_graph=True, allow_unused=True)
            flat = [(g if g is not None else Tensor.wrap(t.xp.zeros(t.data.shape, dtype=t.dtype), t.device))
                    .reshape(-1) for g, t in zip(grads, targets)]
            return concatenate(flat) if len(flat) > 1 else flat[0]

    try:
        return gradcheck(first_derivatives, inputs + [v], eps=eps, atol=atol, rtol=rtol, fast_mode=fast_mode,
                         seed=seed, n_directions=n_directions, nonsmooth=nonsmooth)
    except GradcheckError as error:
        text = str(error)
        if f"input {n} " in text:
            text = text.replace(f"input {n} ", "grad_outputs ", 1)
        raise GradcheckError(f"gradgradcheck (the derivative of the gradients of inputs {wants}, flattened "
                             f"end to end): {text}") from None
