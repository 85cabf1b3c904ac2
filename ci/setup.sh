#!/usr/bin/env bash
# Install everything harness needs on a Debian 12 machine, idempotently:
# apt packages, the Python package (editable, with test extras), and the Debian kernels the
# project's vm tests boot (into the harness cache under XDG_CACHE_HOME). Kernel headers, for the
# fault drill's module, come through the harness's apt state when a run needs them.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
    qemu-system-x86      # the guest machine
    busybox-static       # the guest's init and tools
    liburing-dev         # static liburing.a for cow_tests
    libibverbs-dev ibverbs-providers  # static libibverbs + the soft-RoCE provider for cow_rdma
    iproute2             # `rdma link add` in the guest (from the shared /usr)
    gcc make libc6-dev   # building cow_tests
    kmod                 # depmod for Debian kernel modules
    dwarves              # pahole: BTF for the harness_pin module built against Debian headers
    e2fsprogs util-linux # mkfs.ext4 and mkswap for the scratch disks
    xz-utils cpio        # module decompression, initramfs inspection
    dropbear-bin         # guest sshd and host key generation (SSH transport)
    python3 python3-pip  # python3 is also the guest's, shared read-only
    git ca-certificates
    flex bison bc libelf-dev libssl-dev ccache  # building kernels (harness build)
    linux-source-6.12    # kernel source from the Debian archive (harness source fetch debian:6.12)
    chromium             # renders report.html in tests/contract/test_browser.py (installs in ~16 s)
    lava-dispatcher      # lava-run: runs the generated LAVA job in tests/vm/test_lava.py (~50 s to install)
    debootstrap squashfs-tools  # the guest userspace image (harness/vm/userspace.py: --userspace image, LAVA jobs)
)

need=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
# apt lists are needed both to install and to resolve debian:6.12 to the newest package.
if [ ${#need[@]} -gt 0 ] || [ -z "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v -e lock -e partial)" ]; then
    $SUDO apt-get update -qq
fi
if [ ${#need[@]} -gt 0 ]; then
    echo "ci/setup.sh: installing ${need[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
pip_flags=(-q)
# Debian's own python3 refuses system-wide pip installs (PEP 668) unless told otherwise.
if "$PY" -c 'import sys, sysconfig, os; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED")))'; then
    pip_flags+=(--break-system-packages)
fi
"$PY" -m pip install "${pip_flags[@]}" -e ".[test]" 2>&1 | grep -v -e "^WARNING: Running pip as" -e "notice" || true
command -v harness >/dev/null || { echo "ci/setup.sh: 'harness' is not on PATH after install" >&2; exit 1; }

# The harness's own apt state (bookworm, trixie and their updates/security/backports, under
# $XDG_CACHE_HOME/harness/apt; /etc/apt is not changed), then the kernels the vm tests and the
# default job boot (cached; a no-op when already there): the default 6.12, the old 6.1 and the
# newest line from trixie-backports.
harness kernel update
harness kernel fetch debian:6.12 debian:6.1.0-56 debian:7.3
# The guest userspace image (--userspace image, LAVA jobs): built once into the cache from the
# Debian archive (~1.5-2 min, ~31 MiB), a no-op when it is there.
harness userspace
# The 6.12 source tree, unpacked once into the cache (~150 MB package, ~30 s to unpack): the
# Kconfig test and `harness build` use it.
harness source fetch debian:6.12 >/dev/null
harness doctor
