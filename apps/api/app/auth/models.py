"""What the key store hands out: key descriptions without hashes, and a new key once."""

from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from app.auth.scopes import Scope


class KeyStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


class KeyInfo(BaseModel):
    """One API key as an admin may see it: never a secret, never a hash."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    scopes: tuple[Scope, ...]
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    # After a rotation the previous secret is accepted until then.
    previous_valid_until: float | None = None
    requests_per_minute: int | None = None
    characters_per_minute: int | None = None

    def status(self, now: float) -> KeyStatus:
        if self.revoked_at is not None:
            return KeyStatus.REVOKED
        if self.expires_at is not None and now >= self.expires_at:
            return KeyStatus.EXPIRED
        return KeyStatus.ACTIVE


@dataclass(frozen=True)
class CreatedKey:
    """A key just made or rotated: the only time its full `sv_<id>_<secret>` form exists."""

    info: KeyInfo
    key: str = field(repr=False)
