"""The reading path stays small and plain (issue 24), as benchmarks/size.py measures it: the five core
files at most 1,500 code lines, optim.py at most 250, no function there over 60 lines, and no device
branch, thread or chunk outside device.py. A change that needs more belongs in kernels/."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))
import size  # noqa: E402


def test_the_reading_path_meets_its_targets():
    result = size.report()
    assert result["reading_path_total"] <= size.TARGETS["reading path"], result["reading_path"]
    assert result["optim.py"] <= size.TARGETS["optim.py"], result["optim.py"]
    assert result["second_derivatives_total"] <= size.TARGETS["second derivatives"], result["second_derivatives"]
    assert result["longest_function"]["lines"] <= size.TARGETS["longest function"], result["longest_function"]
    assert not result["device_branches_in_reading_path"], result["device_branches_in_reading_path"]


def test_second_derivative_code_is_counted_apart():
    source = ('class Op:\n    def backward(self, g):\n        return g\n\n'
              '    def backward_graph(self, g, inputs, output):\n        """Doc."""\n        return g\n')
    assert size.second_order_lines(source) == {5, 7}


def test_code_lines_leave_out_docstrings_comments_and_blank_lines():
    source = 'def f(x):\n    """Doc\n    string."""\n    # a comment\n\n    return (x +\n            1)  # and code\n'
    assert size.code_lines(source) == {1, 6, 7}
    assert size.functions(source) == [("f", 3)]
