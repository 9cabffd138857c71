"""API keys: format, scopes, the key store, and the per-request guard with its rate limits."""

from app.auth.guard import BadKeyBrake, Guard, Outcome, RateDecision, Verdict
from app.auth.keys import ParsedKey, hash_secret, new_key, parse_key
from app.auth.models import CreatedKey, KeyInfo, KeyStatus
from app.auth.pepper import load_pepper
from app.auth.scopes import Scope, grants, parse_scopes
from app.auth.store import KeyStore, RevokedKeyError, UnknownKeyError

__all__ = [
    "BadKeyBrake",
    "CreatedKey",
    "Guard",
    "KeyInfo",
    "KeyStatus",
    "KeyStore",
    "Outcome",
    "ParsedKey",
    "RateDecision",
    "RevokedKeyError",
    "Scope",
    "UnknownKeyError",
    "Verdict",
    "grants",
    "hash_secret",
    "load_pepper",
    "new_key",
    "parse_key",
    "parse_scopes",
]
