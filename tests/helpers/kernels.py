"""The kernels the vm tests boot (override with HARNESS_TEST_KERNEL*)."""

import os

TEST_KERNEL = os.environ.get("HARNESS_TEST_KERNEL", "debian:6.12")
TEST_KERNEL_OLD = os.environ.get("HARNESS_TEST_KERNEL_OLD", "debian:6.1.0-56")
# The newest line, from trixie-backports through the harness's own apt state (split 6.19+ layout).
TEST_KERNEL_NEW = os.environ.get("HARNESS_TEST_KERNEL_NEW", "debian:7.3")
