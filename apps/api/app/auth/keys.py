"""The API key format `sv_<id>_<secret>`: making, parsing and hashing keys."""

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

PREFIX = "sv_"
ID_LENGTH = 12
MIN_SECRET_LENGTH = 32
MAX_SECRET_LENGTH = 128
MAX_KEY_LENGTH = len(PREFIX) + ID_LENGTH + 1 + MAX_SECRET_LENGTH

# Ids are lowercase base32 (what we make) or hex; secrets are url-safe base64 (which may
# itself contain "_", so the id has a fixed length rather than a separator search).
_KEY = re.compile(
    rf"sv_(?P<id>[a-z0-9]{{{ID_LENGTH}}})_"
    rf"(?P<secret>[A-Za-z0-9_-]{{{MIN_SECRET_LENGTH},{MAX_SECRET_LENGTH}}})"
)
_ID = re.compile(rf"[a-z0-9]{{{ID_LENGTH}}}")


@dataclass(frozen=True)
class ParsedKey:
    id: str
    secret: str = field(repr=False)


def parse_key(raw: object) -> ParsedKey | None:
    """The key's id and secret, or None for anything that is not a well-formed key."""
    if not isinstance(raw, str) or len(raw) > MAX_KEY_LENGTH:
        return None
    match = _KEY.fullmatch(raw)
    if match is None:
        return None
    return ParsedKey(id=match["id"], secret=match["secret"])


def is_key_id(value: str) -> bool:
    return len(value) == ID_LENGTH and _ID.fullmatch(value) is not None


def hash_secret(secret: str, pepper: str) -> str:
    """HMAC-SHA256 of the secret keyed by the pepper, as hex: all that is ever stored."""
    return hmac.new(pepper.encode(), secret.encode(), hashlib.sha256).hexdigest()


def format_key(key_id: str, secret: str) -> str:
    return f"{PREFIX}{key_id}_{secret}"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def new_key() -> tuple[str, str, str]:
    """A fresh (id, secret, raw key); 60 random bits of id, 256 of secret."""
    key_id = base64.b32encode(secrets.token_bytes(8)).decode().lower()[:ID_LENGTH]
    secret = new_secret()
    return key_id, secret, format_key(key_id, secret)
