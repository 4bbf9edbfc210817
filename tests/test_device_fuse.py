"""device.fuse: one kernel launch for an elementwise chain on CuPy arrays, the plain function on NumPy.

The gpu cases run on a real GPU where there is one, else on the strict CuPy emulation, whose
cupy.fuse counts one launch per fused call and refuses non-elementwise calls inside, as CuPy does."""
import numpy as np
import pytest

from tinygrad_cnn.kernels.fusion import fuse

from conftest import EMULATED

emulated = pytest.mark.skipif(not EMULATED, reason="launch counts come from the emulation")


def adam_like(xp, p, g, m, scale):
    """An in-place update and a returned value, with a ufunc from xp: what an optimizer kernel does."""
    m += (g - m) * 0.1
    p -= scale * m / (xp.sqrt(m * m) + 1e-3)
    return xp.where(m > 0, m, -m)


fused_adam_like = fuse(adam_like)


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(6).astype(np.float32) for _ in range(3)]


def test_on_numpy_it_is_the_plain_function():
    p, g, m = _arrays()
    p2, g2, m2 = (a.copy() for a in (p, g, m))
    out = fused_adam_like(p, g, m, 0.5)
    expected = adam_like(np, p2, g2, m2, 0.5)
    assert type(out) is np.ndarray and out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(p, p2)  # in-place updates reach the caller's arrays
    np.testing.assert_array_equal(m, m2)
    assert fused_adam_like.__name__ == "adam_like" and fused_adam_like.__wrapped__ is adam_like


def test_python_scalars_only_run_on_numpy():
    assert fuse(lambda xp, a, b: xp.maximum(a, b))(1.0, 2.0) == 2.0


def axpy(xp, a, x, y):
    """In place only, returning nothing (as the optimizers' kernels are)."""
    y += a * xp.sqrt(x)


@pytest.mark.gpu
def test_on_cupy_an_in_place_kernel_without_a_result_updates_its_argument():
    import cupy
    x, y = np.arange(4, dtype=np.float32), np.ones(4, dtype=np.float32)
    cp_x, cp_y = cupy.asarray(x), cupy.asarray(y)
    fuse(axpy)(0.5, cp_x, cp_y)
    axpy(np, 0.5, x, y)
    np.testing.assert_allclose(cupy.asnumpy(cp_y), y, rtol=1e-6)


@pytest.mark.gpu
def test_on_cupy_it_computes_what_the_plain_function_does():
    import cupy
    p, g, m = _arrays(1)
    cp_p, cp_g, cp_m = (cupy.asarray(a) for a in (p, g, m))
    out = fused_adam_like(cp_p, cp_g, cp_m, 0.5)
    expected = adam_like(np, p, g, m, 0.5)
    assert isinstance(out, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(out), expected, rtol=1e-6)
    np.testing.assert_allclose(cupy.asnumpy(cp_p), p, rtol=1e-6)
    np.testing.assert_allclose(cupy.asnumpy(cp_m), m, rtol=1e-6)


@pytest.mark.gpu
@emulated
def test_on_cupy_a_chain_is_one_launch_and_the_kernel_is_made_once():
    import cupy
    from cupy_emulation import record
    made = []
    real_fuse = cupy.fuse

    def counting_fuse(*args, **kwargs):
        made.append(kwargs.get("kernel_name"))
        return real_fuse(*args, **kwargs)

    kernel = fuse(adam_like)
    cp_p, cp_g, cp_m = (cupy.asarray(a) for a in _arrays(2))
    cupy.fuse = counting_fuse
    try:
        with record() as counts:
            kernel(cp_p, cp_g, cp_m, 0.5)
            kernel(cp_p, cp_g, cp_m, 0.25)
    finally:
        cupy.fuse = real_fuse
    assert counts.launches == 2 and counts.syncs == 0  # unfused: 12 launches a call
    assert made == ["adam_like"]


@pytest.mark.gpu
@emulated
def test_on_cupy_the_body_may_hold_only_elementwise_calls():
    import cupy
    total = fuse(lambda xp, a: xp.sum(a * 2))
    with pytest.raises(TypeError, match="not supported inside a fused function"):
        total(cupy.asarray(np.ones(3, dtype=np.float32)))
    assert total(np.ones(3)) == 6.0  # NumPy runs anything


@pytest.mark.gpu
@emulated
def test_on_cupy_it_runs_on_its_arrays_device_not_the_current_one():
    import cupy
    with cupy.cuda.Device(1):
        cp_p, cp_g, cp_m = (cupy.asarray(a) for a in _arrays(3))
    out = fused_adam_like(cp_p, cp_g, cp_m, 0.5)  # device 0 is current here
    assert out.device.id == 1
    assert cupy.cuda.Device().id == 0  # and it is current again after the call


def test_a_cpu_version_is_what_numpy_runs_and_the_plain_body_what_cupy_fuses():
    plain = fuse(lambda xp, a: a + 1)
    tuned = fuse(cpu=lambda xp, a: a + 2)(lambda xp, a: a + 1)
    assert plain(np.zeros(2))[0] == 1 and tuned(np.zeros(2))[0] == 2
    assert tuned.__wrapped__(np, np.zeros(2))[0] == 1 and plain.cpu is None


@pytest.mark.gpu
@emulated
def test_the_emulation_counts_a_fused_launch_at_its_callers_line():
    """Not at device.fuse's wrapper: bench_gpu_budget's launch sites then name the op's line."""
    import cupy
    import inspect
    from cupy_emulation import record
    a = cupy.asarray(np.ones(3, dtype=np.float32))
    with record() as counts:
        line = inspect.currentframe().f_lineno + 1
        fused_adam_like(a, a, a, 0.5)
    assert dict(counts.sites) == {("launch", f"tests/test_device_fuse.py:{line}"): 1}
