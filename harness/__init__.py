"""harness: boot real kernels under QEMU and judge their COW and page-pinning behaviour."""

__version__ = "0.1.0"
