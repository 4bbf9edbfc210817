"""Install with `pip install -e .[test]`; numpy is the only hard dependency."""
from setuptools import find_packages, setup

setup(
    name="tinygrad_cnn",
    version="0.1.0",
    description="A small deep-learning framework on NumPy (CPU) and CuPy (GPU) with property-tested gradients",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tinygrad_cnn", "tinygrad_cnn.*"]),
    python_requires=">=3.10",
    install_requires=["numpy>=1.24"],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6.80", "threadpoolctl>=3.1"],
        # threads per op on the CPU: threadpoolctl keeps BLAS to one thread inside them (parallel.py)
        "fast": ["threadpoolctl>=3.1"],
        "cuda12": ["cupy-cuda12x>=13"],
        "cuda13": ["cupy-cuda13x>=13"],
        "progress": ["tqdm>=4.60"],
        "plot": ["matplotlib>=3.6"],
        # data-parallel training (tinygrad_cnn.distributed): mpi4py and an MPI that installs by name (MPICH's wheel)
        "distributed": ["mpi4py>=4", "mpich>=4"],
    },
    license="MIT",
)
