"""The AUTH__ settings group: environment names, blanks, and what is refused."""

import pytest
from pydantic import ValidationError

from app.config import AuthSettings, Settings
from tests.auth.conftest import BOOTSTRAP_KEY


def test_auth_settings_come_from_auth_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH__PEPPER", "p" * 20)
    monkeypatch.setenv("AUTH__BOOTSTRAP_ADMIN_KEY", BOOTSTRAP_KEY)
    monkeypatch.setenv("AUTH__REQUESTS_PER_MINUTE", "7")
    monkeypatch.setenv("AUTH__CORS_ORIGINS", '["https://app.example"]')

    auth = Settings(_env_file=None).auth

    assert auth.pepper is not None
    assert auth.pepper.get_secret_value() == "p" * 20
    assert auth.bootstrap_admin_key is not None
    assert auth.requests_per_minute == 7
    assert auth.cors_origins == ["https://app.example"]
    assert BOOTSTRAP_KEY not in repr(auth)


def test_blank_secrets_mean_unset() -> None:
    auth = AuthSettings(pepper="", bootstrap_admin_key="  ")  # type: ignore[arg-type]

    assert auth.pepper is None
    assert auth.bootstrap_admin_key is None


@pytest.mark.parametrize(
    "fields",
    [
        {"pepper": "short"},
        {"bootstrap_admin_key": "letmein"},
        {"requests_per_minute": 0},
        {"characters_per_minute": 0},
        {"rotation_grace_s": -1},
    ],
)
def test_nonsense_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AuthSettings(**fields)  # type: ignore[arg-type]
