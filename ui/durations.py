"""Durations as people type them on the command line: '90', '45s', '30m', '12h', '7d', '2w'."""

from __future__ import annotations

import re

import click

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration_s(text: str) -> float:
    """'90', '45s', '30m', '12h', '7d', '2w' as seconds."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration like 30m, 12h or 7d")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


class Duration(click.ParamType[float, object]):
    name = "duration"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return parse_duration_s(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
