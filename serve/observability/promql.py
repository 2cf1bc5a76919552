"""The metric names a PromQL expression reads, without a full PromQL parser.

Enough for the expressions of a dashboard: string literals, label matchers, range and
subquery brackets and grouping clauses (``by (...)``, ``on (...)``...) are removed first;
what remains are metric names, function and aggregation names (followed by "("), keywords
and numbers.
"""

from __future__ import annotations

import re

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.$])([A-Za-z_:][\w:]*)(\s*\()?")
KEYWORDS: frozenset[str] = frozenset({
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless",
    "atan2", "inf", "nan", "Inf", "NaN",
})


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects (Grafana's ``$variables`` may appear in it)."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _BRACKETS.sub("", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if call is None and name not in KEYWORDS:
            names.add(name)
    return names
