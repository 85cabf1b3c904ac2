"""harness.kconfig: fragment merging, the survival check and the 'dropped option' message, on a
synthetic Kconfig tree (no kernel source needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import InputError
from harness.kernels import kbuild, kconfig

BASE = """\
#
# Automatically generated file; DO NOT EDIT.
#
CONFIG_64BIT=y
CONFIG_KERNEL_XZ=y
# CONFIG_SWAP is not set
CONFIG_HZ=250
CONFIG_CMDLINE="quiet"
"""

# A small tree: a top Kconfig sourcing others, an `if` around a source, a menu with a
# `depends on`, a choice, help text that mentions "config" and "depends on", continuations.
TREE = {
    "Kconfig": """\
mainmenu "Test"
source "mm/Kconfig"
menuconfig NET
\tbool "Networking"
if NET
source "net/9p/Kconfig"
endif # NET
source "arch/$(SRCARCH)/Kconfig"
config EXPERT
\tbool "expert"
""",
    "mm/Kconfig": """\
config CHECKPOINT_RESTORE
\tbool "Checkpoint/restore"

config PROC_FS
\tbool "proc"

config MEM_SOFT_DIRTY
\tbool "Track memory changes"
\tdepends on CHECKPOINT_RESTORE && HAVE_ARCH_SOFT_DIRTY && \\
\t\tPROC_FS
\tselect PROC_PAGE_MONITOR
\thelp
\t  This option enables memory changes tracking.
\t  config NOT_A_SYMBOL
\t  depends on SOMETHING_IN_HELP

config PROC_PAGE_MONITOR
\tbool "Enable /proc page monitoring" if EXPERT
\tdepends on PROC_FS # trailing comment

config NO_PROMPT
\tbool

menu "Debug"
\tdepends on DEBUG_KERNEL

config GUP_TEST
\tbool "gup_test"
\tdepends on DEBUG_FS
endmenu

choice
\tprompt "Kernel compression mode"
config KERNEL_GZIP
\tbool "Gzip"
config KERNEL_XZ
\tbool "XZ"
endchoice
""",
    "net/9p/Kconfig": """\
menuconfig NET_9P
\ttristate "Plan 9 Resource Sharing Support (9P2000)"
""",
    "arch/x86/Kconfig": """\
config HAVE_ARCH_SOFT_DIRTY
\tdef_bool y
config X86_ONLY
\tbool "x86 thing" if !EXPERT || PROC_FS
""",
}


def read(rel: str) -> str | None:
    return TREE.get(rel)


def test_parse_keeps_not_set_as_n() -> None:
    cfg = kconfig.parse(BASE + "  CONFIG_INDENTED=y\r\n")
    assert cfg["CONFIG_SWAP"] == "n"
    assert cfg["CONFIG_CMDLINE"] == '"quiet"'
    assert cfg["CONFIG_INDENTED"] == "y"


def test_merge_replaces_in_place_appends_new_later_fragment_wins() -> None:
    merged = kconfig.merge(
        BASE,
        [{"CONFIG_SWAP": "y", "CONFIG_KERNEL_XZ": "n", "CONFIG_GUP_TEST": "y"}, {"CONFIG_GUP_TEST": "n"}],
    )
    lines = merged.splitlines()
    assert "CONFIG_SWAP=y" in lines and "# CONFIG_SWAP is not set" not in lines
    assert lines.index("CONFIG_SWAP=y") == BASE.splitlines().index("# CONFIG_SWAP is not set")
    assert "# CONFIG_KERNEL_XZ is not set" in lines
    assert lines[-1] == "# CONFIG_GUP_TEST is not set"
    assert merged.count("GUP_TEST") == 1
    assert "CONFIG_HZ=250" in lines and 'CONFIG_CMDLINE="quiet"' in lines


def test_dropped_accepts_m_as_y_and_reports_the_rest() -> None:
    final = kconfig.parse("CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_E=300\n")
    wanted = {
        "CONFIG_A": ("m", "f1"),
        "CONFIG_B": ("y", "f1"),
        "CONFIG_C": ("y", "f2"),
        "CONFIG_D": ("n", "f2"),
        "CONFIG_E": ("100", "f2"),
        "CONFIG_F": ("n", "f2"),
    }
    final["CONFIG_D"] = "y"
    lost = kconfig.dropped(wanted, final)
    assert [(d.option, d.wanted, d.got, d.source) for d in lost] == [
        ("CONFIG_C", "y", "n", "f2"),
        ("CONFIG_D", "n", "y", "f2"),
        ("CONFIG_E", "100", "300", "f2"),
    ]


def test_definitions_follow_sources_if_blocks_menus_and_skip_help() -> None:
    (d,) = kconfig.definitions(read, "MEM_SOFT_DIRTY")
    assert (d.file, d.line) == ("mm/Kconfig", 7)
    assert d.depends == ("CHECKPOINT_RESTORE && HAVE_ARCH_SOFT_DIRTY && PROC_FS",)
    assert d.prompt
    assert kconfig.definitions(read, "NOT_A_SYMBOL") == []
    (g,) = kconfig.definitions(read, "GUP_TEST")
    assert g.depends == ("DEBUG_FS", "DEBUG_KERNEL")  # its own, then the menu's
    (n,) = kconfig.definitions(read, "NET_9P")
    assert n.depends == ("NET",)  # from the `if NET` around the source statement
    (p,) = kconfig.definitions(read, "PROC_PAGE_MONITOR")
    assert p.prompt_if == "EXPERT" and p.depends == ("PROC_FS",)
    (x,) = kconfig.definitions(read, "HAVE_ARCH_SOFT_DIRTY")
    assert x.file == "arch/x86/Kconfig" and not x.prompt
    (z,) = kconfig.definitions(read, "KERNEL_GZIP")
    assert z.in_choice


@pytest.mark.parametrize(
    "expr,cfg,value",
    [
        ("A && B", "CONFIG_A=y\nCONFIG_B=m\n", True),
        ("A && B", "CONFIG_A=y\n", False),
        ("A || B", "CONFIG_B=y\n", True),
        ("!A", "CONFIG_A=y\n", False),
        ("(A || B) && !C", "CONFIG_A=y\n", True),
        ("A = y", "CONFIG_A=m\n", False),
        ("A != n", "CONFIG_A=m\n", True),
        ("X86_64 && (A || B)", "CONFIG_X86_64=y\n", False),
    ],
)
def test_evaluate(expr: str, cfg: str, value: bool) -> None:
    assert kconfig.evaluate(expr, kconfig.parse(cfg)) is value


def test_unmet_names_only_what_holds_an_expression_back() -> None:
    final = kconfig.parse("CONFIG_PROC_FS=y\nCONFIG_HAVE_ARCH_SOFT_DIRTY=y\nCONFIG_EXPERT=y\n")
    assert kconfig.unmet("CHECKPOINT_RESTORE && HAVE_ARCH_SOFT_DIRTY && PROC_FS", final) == [
        "CHECKPOINT_RESTORE"
    ]
    assert kconfig.unmet("A || PROC_FS", final) == []
    assert kconfig.unmet("!EXPERT", final) == ["!EXPERT"]


def test_explain_names_the_option_and_the_missing_dependency() -> None:
    final = kconfig.parse("CONFIG_PROC_FS=y\nCONFIG_HAVE_ARCH_SOFT_DIRTY=y\n")
    d = kconfig.Dropped("CONFIG_MEM_SOFT_DIRTY", "y", "n", "kernels/cow.config")
    msg = kconfig.explain(d, kconfig.definitions(read, "MEM_SOFT_DIRTY"), final)
    assert msg == (
        "CONFIG_MEM_SOFT_DIRTY=y (kernels/cow.config) did not survive olddefconfig (now not set): "
        "depends on CHECKPOINT_RESTORE && HAVE_ARCH_SOFT_DIRTY && PROC_FS (mm/Kconfig:7); "
        "not met: CHECKPOINT_RESTORE"
    )
    assert "\n" not in msg


def test_explain_other_reasons() -> None:
    final = kconfig.parse("CONFIG_PROC_FS=y\n")
    gone = kconfig.Dropped("CONFIG_GONE", "y", "n", "f")
    assert "no 'config GONE' in this tree" in kconfig.explain(gone, [], final)
    np = kconfig.Dropped("CONFIG_NO_PROMPT", "y", "n")
    assert "has no prompt" in kconfig.explain(np, kconfig.definitions(read, "NO_PROMPT"), final)
    ch = kconfig.Dropped("CONFIG_KERNEL_GZIP", "y", "n")
    assert "member of a choice" in kconfig.explain(ch, kconfig.definitions(read, "KERNEL_GZIP"), final)
    pm = kconfig.Dropped("CONFIG_PROC_PAGE_MONITOR", "y", "n")
    assert "its prompt needs EXPERT" in kconfig.explain(
        pm, kconfig.definitions(read, "PROC_PAGE_MONITOR"), final
    )
    forced = kconfig.Dropped("CONFIG_PROC_FS", "n", "y", "f")
    assert kconfig.explain(forced, [], final, ["SYSFS"]).endswith("selected by SYSFS")


def test_check_survived_raises_one_line_input_error(tmp_path: Path) -> None:
    for rel, text in TREE.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    frag = tmp_path / "cow.config"
    frag.write_text("CONFIG_PROC_FS=y\nCONFIG_MEM_SOFT_DIRTY=y\nCONFIG_GUP_TEST=y\n")
    final = kconfig.parse("CONFIG_PROC_FS=y\nCONFIG_HAVE_ARCH_SOFT_DIRTY=y\n")
    with pytest.raises(InputError) as e:
        kbuild.check_survived(tmp_path, (frag,), final)
    msg = str(e.value)
    assert msg.startswith("CONFIG_MEM_SOFT_DIRTY=y (")
    assert "not met: CHECKPOINT_RESTORE" in msg and "(and 1 more: CONFIG_GUP_TEST)" in msg
    assert "\n" not in msg
    kbuild.check_survived(tmp_path, (frag,), {**final, "CONFIG_MEM_SOFT_DIRTY": "y", "CONFIG_GUP_TEST": "y"})
