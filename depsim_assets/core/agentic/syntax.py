"""Interface syntax that is not about a person, shielded from the scrubber.

Tool interfaces print line numbers and headers that the person-name and phone rules misread: in
`set_cursors 1475 1475` the arguments look like a phone number, in `[File: app.py]` "File" looks like a
speaker label. Scrubbing them would change what the agent asked and saw. Only spans that are interface
syntax by position are shielded — a line-number prefix, a window header, a line-number argument of a
windowed-editor command or JSON field — by moving their characters to a private-use block, where no rule
(and no gate pattern) matches; they are moved back after the gate.
"""

from __future__ import annotations

import re

BASE_DIGIT, BASE_ASCII = 0xF0000, 0xF0100  # supplementary private use: the scrubber uses U+E000-E003 itself
OBSERVATION_SYNTAX = re.compile(
    r"^\d{1,7}:|^Line \d{1,7}:|\[File: |\(\d{1,7} lines total\)|\(\d{1,7} more lines (?:above|below)\)"
    r"|(?:START|END)_CURSOR moved to \d{1,7}|Found \d{1,7} matches|^ *\d{1,7}\t|\blines? \d{1,7}\b", re.M)
COMMAND_SYNTAX = re.compile(r"^(?:goto|scroll_up|scroll_down|set_cursors|edit|insert|open\s+\S+|search_file\s+\S+)(?:[ \t]+\d{1,7}(?::\d{1,7})?)+[ \t]*$", re.M)
ARGUMENT_SYNTAX = re.compile(r'"command"\s*:\s*"(?:goto|scroll_up|scroll_down|set_cursors|edit|insert|open\s+[^"\s]+)(?:[ \t]+\d{1,7}(?::\d{1,7})?)+'
                             r'|"(?:line_number|start_line|end_line|insert_line|line)"\s*:\s*"?\d{1,7}"?|"view_range"\s*:\s*\[\s*-?\d{1,7}\s*,\s*-?\d{1,7}\s*\]'
                             r'|"line_range"\s*:\s*"\d{1,7}:\d{1,7}"')


def _shift(span: str) -> str:
    return "".join(chr(BASE_DIGIT + int(c)) if c in "0123456789" else chr(BASE_ASCII + ord(c)) if c.isascii() and c.isalpha() else c
                   for c in span)


def shield(text: str) -> str:
    for pattern in (OBSERVATION_SYNTAX, COMMAND_SYNTAX, ARGUMENT_SYNTAX):
        text = pattern.sub(lambda m: _shift(m.group(0)), text)
    return text


def unshield(text: str) -> str:
    return "".join(chr(ord(c) - BASE_DIGIT + 48) if BASE_DIGIT <= ord(c) < BASE_DIGIT + 10
                   else chr(ord(c) - BASE_ASCII) if BASE_ASCII <= ord(c) < BASE_ASCII + 128 else c for c in text)
