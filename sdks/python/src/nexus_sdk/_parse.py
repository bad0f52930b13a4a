"""Reading the broker's JSON values: timestamps, lists and optional strings (shared by the models)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp from the broker as an aware datetime (``None`` stays ``None``)."""
    if value is None or value == "":
        return None
    text = str(value)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


def _str_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
