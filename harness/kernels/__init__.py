"""Kernels: resolving a spec (Debian package, bzImage, tree), Debian's archive through our own apt
state, source trees, out-of-tree builds, Kconfig fragments, bzImage headers, modules, kernel identity."""
