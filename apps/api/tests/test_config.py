"""Settings: the seed's flat names, nested names, defaults and validation, isolated from `.env`."""

import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from app import config
from app.config import Settings, SynthesisSettings

GROUPS = ("elevenlabs", "redis", "synthesis", "server", "monitoring")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Keeps the developer's variables and `.env` out; returns the `.env` path the tests use."""
    for name in list(os.environ):
        upper = name.upper()
        if upper in config.SEED_NAMES or upper.split("__")[0] in {g.upper() for g in GROUPS}:
            monkeypatch.delenv(name)
    env_file = tmp_path / ".env"
    monkeypatch.setattr(config, "ENV_FILE", env_file)
    return env_file


def _settings() -> Settings:
    return Settings(_env_file=None)


def test_defaults_without_any_configuration() -> None:
    settings = _settings()

    assert settings.elevenlabs.api_key is None
    assert settings.elevenlabs.key is None
    assert settings.elevenlabs.base_url == "https://api.elevenlabs.io"
    assert settings.synthesis.response_timeout_ms == 2000
    assert settings.redis.cache_url is None
    assert settings.monitoring.webhook_url is None


def test_the_seeds_flat_names_fill_the_nested_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELEVEN_LABS_API_KEY", "sk_flat_key")
    monkeypatch.setenv("ELEVEN_LABS_BASE_URL", "http://127.0.0.1:9999")
    monkeypatch.setenv("VOICE_RESPONSE_TIMEOUT_MS", "1500")
    monkeypatch.setenv("REDIS_URL", "redis://state.example:6379/1")
    monkeypatch.setenv("CACHE_REDIS_URL", "redis://cache.example:6379/2")
    monkeypatch.setenv("MONITORING_WEBHOOK_URL", "https://hooks.example/alerts")
    monkeypatch.setenv("TWENTYONEDEV_API_KEY", "tw_flat_key")

    settings = _settings()

    assert settings.elevenlabs.key == "sk_flat_key"
    assert settings.elevenlabs.base_url == "http://127.0.0.1:9999"
    assert settings.synthesis.response_timeout_ms == 1500
    assert settings.redis.url == "redis://state.example:6379/1"
    assert settings.redis.cache_url == "redis://cache.example:6379/2"
    assert settings.monitoring.webhook_url == "https://hooks.example/alerts"
    assert settings.monitoring.api_key is not None
    assert settings.monitoring.api_key.get_secret_value() == "tw_flat_key"


def test_every_seed_name_lands_in_a_real_field() -> None:
    for name, (group, field) in config.SEED_NAMES.items():
        assert group in Settings.model_fields, name
        assert field in type(getattr(_settings(), group)).model_fields, name


def test_the_seeds_flat_names_are_read_from_the_env_file(clean_environment: Path) -> None:
    clean_environment.write_text(
        "ELEVEN_LABS_API_KEY=sk_from_file\nVOICE_RESPONSE_TIMEOUT_MS=2500\n", encoding="utf-8"
    )

    settings = _settings()

    assert settings.elevenlabs.key == "sk_from_file"
    assert settings.synthesis.response_timeout_ms == 2500


def test_nested_names_win_over_flat_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELEVEN_LABS_API_KEY", "sk_flat_key")
    monkeypatch.setenv("ELEVENLABS__API_KEY", "sk_nested_key")
    monkeypatch.setenv("REDIS_URL", "redis://flat:6379/0")
    monkeypatch.setenv("REDIS__URL", "redis://nested:6379/0")

    settings = _settings()

    assert settings.elevenlabs.key == "sk_nested_key"
    assert settings.redis.url == "redis://nested:6379/0"


def test_flat_and_nested_names_for_different_fields_of_one_group_both_apply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ELEVEN_LABS_API_KEY", "sk_flat_key")
    monkeypatch.setenv("ELEVENLABS__BASE_URL", "http://nested.example")

    settings = _settings()

    assert settings.elevenlabs.key == "sk_flat_key"
    assert settings.elevenlabs.base_url == "http://nested.example"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ELEVEN_LABS_API_KEY", ""),
        ("ELEVENLABS__API_KEY", ""),
        ("ELEVENLABS__API_KEY", "   "),
    ],
)
def test_a_blank_key_means_no_key(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)

    assert _settings().elevenlabs.key is None


def test_the_key_is_stripped_of_surrounding_whitespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELEVENLABS__API_KEY", "  sk_padded\n")

    assert _settings().elevenlabs.key == "sk_padded"


@pytest.mark.parametrize(("min_chars", "max_chars"), [(100, 100), (120, 100)])
def test_min_segment_chars_at_or_above_max_is_rejected(min_chars: int, max_chars: int) -> None:
    # Both values are inside their own fields' ranges; only their order is wrong.
    with pytest.raises(ValidationError, match="must be below max_segment_chars"):
        SynthesisSettings(min_segment_chars=min_chars, max_segment_chars=max_chars)


def test_segment_bounds_from_the_environment_are_validated_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SYNTHESIS__MIN_SEGMENT_CHARS", "100")
    monkeypatch.setenv("SYNTHESIS__MAX_SEGMENT_CHARS", "60")

    with pytest.raises(ValidationError, match="must be below max_segment_chars"):
        _settings()


def test_ordered_segment_bounds_are_accepted() -> None:
    synthesis = SynthesisSettings(min_segment_chars=99, max_segment_chars=100)

    assert (synthesis.min_segment_chars, synthesis.max_segment_chars) == (99, 100)


def test_a_non_numeric_timeout_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICE_RESPONSE_TIMEOUT_MS", "soon")

    with pytest.raises(ValidationError):
        _settings()


def test_the_cache_url_falls_back_to_the_state_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://state.example:6379/3")

    without = _settings().redis
    monkeypatch.setenv("CACHE_REDIS_URL", "redis://cache.example:6379/4")
    with_cache = _settings().redis

    assert without.effective_cache_url == "redis://state.example:6379/3"
    assert with_cache.effective_cache_url == "redis://cache.example:6379/4"


def test_the_api_key_is_secret_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk_do_not_print_me_0123456789"
    monkeypatch.setenv("ELEVEN_LABS_API_KEY", secret)

    settings = _settings()

    assert isinstance(settings.elevenlabs.api_key, SecretStr)
    assert settings.elevenlabs.key == secret
    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert secret not in shown
