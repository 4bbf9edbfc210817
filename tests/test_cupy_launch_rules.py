"""The emulation counts concatenate and matmul as CuPy 14 launches them (issue 23): by the rules that
tests/cupy_emulation/make_launch_rules.py read from CuPy's sources (launch_rules.json), not one a call."""
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import EMULATED

HERE = Path(__file__).resolve().parent
RULES = json.loads((HERE / "cupy_emulation" / "launch_rules.json").read_text())
pytestmark = [pytest.mark.skipif(not EMULATED, reason="checks the emulation's counting (a real GPU is in use)"),
              pytest.mark.gpu]


@pytest.fixture
def cp():
    import cupy
    return cupy


def _counted(fn):
    from cupy_emulation import record
    with record() as counts:
        fn()
    return counts


def test_the_rules_come_from_the_cupy_whose_names_the_emulation_has():
    names = json.loads((HERE / "cupy_emulation" / "names.json").read_text())
    assert RULES["cupy_version"] == names["cupy_version"]
    assert RULES["concatenate"]["single_kernel_if_more_than"] == 8  # CuPy 14.2's _concatenate
    assert RULES["matmul"]["broadcast_pointer_arrays"] == 3


@pytest.mark.parametrize("count, launches, h2d", [(1, 1, 0), (8, 8, 0), (9, 1, 1)])
def test_concatenate_is_one_kernel_only_for_more_than_8_arrays(cp, count, launches, h2d):
    parts = [cp.asarray(np.full(3, i, dtype=np.float32)) for i in range(count)]
    out = cp.empty(3 * count, dtype=cp.float32)
    counts = _counted(lambda: cp.concatenate(parts, out=out))
    assert (counts.launches, counts.h2d) == (launches, h2d)  # the 9-array kernel copies its pointer array over
    np.testing.assert_array_equal(out.get(), np.repeat(np.arange(count, dtype=np.float32), 3))


def test_concatenate_of_many_arrays_of_different_sizes_sends_their_strides_too(cp):
    parts = [cp.asarray(np.ones(i + 1, dtype=np.float32)) for i in range(9)]
    counts = _counted(lambda: cp.concatenate(parts))
    assert (counts.launches, counts.h2d) == (1, 3)


def test_concatenate_of_many_large_or_mixed_arrays_copies_each(cp):
    big = [cp.zeros((2 << 20) // 4, dtype=cp.float32) for _ in range(9)]  # 2 MiB each: not below the threshold
    assert _counted(lambda: cp.concatenate(big)).launches == 9
    mixed = [cp.zeros(3, dtype=cp.float32 if i else cp.float64) for i in range(9)]
    assert _counted(lambda: cp.concatenate(mixed)).launches == 9
    rows = [cp.zeros(3) for _ in range(4)]
    assert _counted(lambda: cp.stack(rows)).launches == 4


def test_a_batched_matmul_broadcasting_its_2d_operand_builds_pointer_arrays(cp):
    a = cp.ones((4, 3, 5), dtype=cp.float32)
    w = cp.ones((5, 2), dtype=cp.float32)
    out = cp.empty((4, 3, 2), dtype=cp.float32)
    assert _counted(lambda: cp.matmul(a, w, out=out)).launches == 3 + 1  # 3 pointer arrays, gemmBatched
    deeper = cp.ones((2, 4, 3, 5), dtype=cp.float32)
    assert _counted(lambda: cp.matmul(deeper, w)).launches == 3 * 2 + 1  # one more kernel per batch axis
    np.testing.assert_array_equal(out.get(), np.full((4, 3, 2), 5, dtype=np.float32))


def test_a_batched_matmul_copies_a_non_contiguous_operand_and_an_unfit_out(cp):
    a = cp.ones((4, 3, 5), dtype=cp.float32)
    b = cp.ones((4, 5, 2), dtype=cp.float32)
    assert _counted(lambda: cp.matmul(a, b)).launches == 1  # gemmStridedBatched
    f_ordered = cp.ones((4, 2, 5), dtype=cp.float32).transpose(0, 2, 1)
    assert _counted(lambda: cp.matmul(a, f_ordered)).launches == 2  # its C-contiguous copy, the GEMM
    strided_out = cp.empty((4, 2, 3), dtype=cp.float32).transpose(0, 2, 1)
    assert _counted(lambda: cp.matmul(a, b, out=strided_out)).launches == 2  # the GEMM into a temporary, a copy


def test_a_2d_matmul_takes_either_memory_order_and_copies_only_strided_operands(cp):
    a = cp.ones((6, 5), dtype=cp.float32)
    w = cp.ones((5, 2), dtype=cp.float32)
    assert _counted(lambda: cp.matmul(a, w)).launches == 1
    f_ordered = cp.ones((5, 6), dtype=cp.float32).T
    assert _counted(lambda: cp.matmul(f_ordered, w)).launches == 1
    assert _counted(lambda: cp.dot(a[:, ::2], w[::2])).launches == 3  # two copies, the GEMM
    w64 = w.astype(cp.float64)
    assert _counted(lambda: cp.matmul(a, w64)).launches == 2  # a's astype, the GEMM
