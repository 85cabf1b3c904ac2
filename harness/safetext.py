"""Guest text made safe for where it goes: the one place that knows each destination (pure).

Anything that came from the guest (test output, reasons, kernel reports, dropbear's log, even
case ids of upstream selftests) can hold NULs, escape sequences (ESC, BEL, the C1 CSI U+009B),
bytes that were not UTF-8 (decoded with errors="surrogateescape", so they arrive as lone
surrogates), and backtick runs. Each writer passes it through the function for its destination:

- a terminal line or a CI log:   terminal_line (one line) / terminal_text_line (keeps indentation)
- JUnit XML:                     xml_safe (junit-xml escapes the markup itself)
- HTML:                          htmlreport.esc = html.escape(xml_safe(...))
- a Markdown fence (CI summary): markdown_block
- a text or JSON file:           file_text (every report write, see reportio.write_text);
                                 JSON also escapes it (ensure_ascii), so it reads back the same.

Bytes smuggled in by surrogateescape come out as ``\\xNN`` of the original byte everywhere, so
the evidence is kept, never a crash.
"""

from __future__ import annotations

import re

# Everything outside the XML 1.0 Char production: C0 controls but tab/LF/CR, surrogates,
# U+FFFE and U+FFFF; and DEL and the C1 controls, which XML allows but discourages: a JUnit
# message is also printed by CI tools to terminals, where U+009B is a CSI.
XML_ILLEGAL = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# For a terminal line: every control character, C1 included (a stray ESC [ would recolour or
# move the cursor; U+009B is a one-character CSI on many terminals).
TERMINAL_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# What cannot be encoded as UTF-8: lone surrogates.
_SURROGATE = re.compile("[\ud800-\udfff]")
_BACKTICKS = re.compile("`+")


def escape_char(m: re.Match[str]) -> str:
    code = ord(m.group())
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape'd byte 0x80..0xff
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return f"\\x{code:02x}"
    return "\ufffd"


def xml_safe(text: str) -> str:
    """text with every character XML 1.0 forbids replaced by a visible escape.

    Bytes smuggled in by surrogateescape come out as ``\\xNN`` of the original byte, C0
    controls as ``\\xNN`` too, anything else illegal as U+FFFD. CRLF becomes LF (an XML parser
    would do that anyway).
    """
    return XML_ILLEGAL.sub(escape_char, text.replace("\r\n", "\n"))


def one_line(text: str, unsafe: re.Pattern[str] = XML_ILLEGAL) -> str:
    """Single-line form for attributes and table cells (XML attributes lose newlines)."""
    flat = " ".join(text.split())
    return unsafe.sub(escape_char, flat)


def terminal_line(text: str) -> str:
    """text as one line a terminal shows literally: whitespace runs become one space, control
    characters (C1 and ESC included) and smuggled bytes visible escapes."""
    return one_line(text, TERMINAL_UNSAFE)


def terminal_text_line(line: str) -> str:
    """One line of a test's output for a terminal: its indentation kept (tabs expanded), control
    characters and smuggled bytes as visible escapes."""
    return TERMINAL_UNSAFE.sub(escape_char, line.expandtabs(8).rstrip())


def terminal_text(text: str) -> str:
    """Several lines for a terminal: each as terminal_text_line, the line breaks kept."""
    return "\n".join(terminal_text_line(line) for line in text.split("\n"))


def file_text(text: str) -> str:
    """text that encodes as UTF-8 whatever came in: lone surrogates as ``\\xNN`` (or U+FFFD)."""
    return _SURROGATE.sub(escape_char, text)


def markdown_block(text: str) -> str:
    """text as a Markdown code block nothing in it can close: the fence is one backtick longer
    than the longest backtick run inside (CommonMark closes a fence only with at least as many),
    and the text goes in as terminal text (no escapes reach a browser's log viewer either)."""
    body = terminal_text(text).rstrip("\n")
    longest = max((len(m.group()) for m in _BACKTICKS.finditer(body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{body}\n{fence}\n"
