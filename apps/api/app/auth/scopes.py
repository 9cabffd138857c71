"""What a key may do: its scopes, where admin implies every other."""

from collections.abc import Iterable
from enum import StrEnum


class Scope(StrEnum):
    SYNTHESIZE = "synthesize"
    STREAM = "stream"
    BULK = "bulk"
    ANALYTICS = "analytics"
    ADMIN = "admin"


def grants(held: Iterable[Scope], required: Scope) -> bool:
    """Whether scopes `held` allow `required` (admin allows everything)."""
    held = frozenset(held)
    return required in held or Scope.ADMIN in held


def parse_scopes(text: str) -> frozenset[Scope]:
    """Comma-separated scope names; ValueError names any unknown one."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - {scope.value for scope in Scope})
    if unknown:
        raise ValueError(
            f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(s.value for s in Scope)}"
        )
    return frozenset(Scope(name) for name in names)


def format_scopes(scopes: Iterable[Scope]) -> str:
    return ",".join(sorted(Scope(s).value for s in scopes))
