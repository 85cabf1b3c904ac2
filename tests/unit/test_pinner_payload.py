"""What the guest gets for the long-term pinners: the harness_pin module (or why not), and the
RDMA setup, decided on the host (no kernel build, no boot: fakes for the compiler and headers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.errors import BuildError
from harness.kernels import headers
from harness.model import Kernel, KernelVersion
from harness.suites import registry as suites
from harness.vm import image


def _kernel(config: dict[str, str]) -> Kernel:
    return Kernel(
        "debian:7.3",
        Path("/nonexistent/bzImage"),
        "7.3.4+deb13-amd64",
        KernelVersion(7, 3, 4),
        None,
        config=config,
        origin="debian:linux-image-7.3.4+deb13-amd64",
    )


def _selected(name: str, **kw: Any) -> list[suites.Selected]:
    p = suites.Program(name, "cow", Path(f"/x/{name}"), f"cow_tests/{name}", **kw)
    return [suites.Selected(p, ("cow.x.base",))]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))


def test_no_module_when_nothing_pins_or_the_kernel_has_gup_test() -> None:
    assert suites.kernel_payload(_kernel({}), _selected("cow_fork")) == {}
    assert (
        suites.kernel_payload(_kernel({"CONFIG_GUP_TEST": "y"}), _selected("cow_gup", needs_pin=True)) == {}
    )
    assert suites.kernel_payload(_kernel({}), _selected("cow_gup", needs_pin=True), pinner="gup_test") == {}


def test_a_module_that_cannot_be_built_here_is_a_reason_in_the_guest(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_gcc14(k: Kernel) -> str:
        raise BuildError(
            f"{k.release} was built with gcc-14 and this host has gcc-12: a module cannot be built for it here"
        )

    monkeypatch.setattr(headers, "compiler_for", no_gcc14)
    said: list[str] = []
    files = suites.kernel_payload(_kernel({}), _selected("cow_gup", needs_pin=True), said.append)
    assert list(files) == ["modules/harness_pin.ko.why"]
    assert "gcc-14" in files["modules/harness_pin.ko.why"].read_text()
    assert said and "harness_pin module is left out" in said[0]
    # --pinner module asks for it even where gup_test exists: the same reason
    forced = suites.kernel_payload(
        _kernel({"CONFIG_GUP_TEST": "y"}), _selected("cow_gup", needs_pin=True), pinner="module"
    )
    assert list(forced) == ["modules/harness_pin.ko.why"]


def test_a_failed_build_is_a_warning_and_a_reason_not_an_aborted_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "Makefile").write_text("modules:\n\t@echo 'harness_pin.c:1: error: nope' >&2; exit 1\n")
    monkeypatch.setattr(headers, "compiler_for", lambda k: "gcc")
    monkeypatch.setattr(suites, "_headers_for", lambda k, p: tree)
    said: list[str] = []
    files = suites.kernel_payload(_kernel({}), _selected("cow_gup", needs_pin=True), said.append)
    why = files["modules/harness_pin.ko.why"].read_text()
    assert "building the long-term pin module harness_pin" in why and "error: nope" in why
    assert said[-1].startswith("warning: building the long-term pin module")


def test_the_rdma_guest_loads_soft_roce_and_says_so_in_its_env() -> None:
    opts = image.GuestOptions(nonce="n", rdma=True, pinner="module")
    env = image._env_file(opts).decode()
    assert "HARNESS_RDMA=1\n" in env and "HARNESS_PINNER=module\n" in env
    assert "HARNESS_RDMA=0\n" in image._env_file(image.GuestOptions(nonce="n")).decode()
    init = (image.GUEST_DIR / "init").read_text()
    assert "rdma link add rxe0 type rxe netdev eth0" in init and "/run/harness-rdma.why" in init
    assert {"rdma_rxe", "ib_uverbs"} <= set(image.RDMA_MODULES)
