"""PUT/GET/DELETE /api/v1/voice/agents/{id}, and the agent's persona and voices in synthesis."""

from typing import Any

import httpx
import pytest

from app.tts.models import Language, Persona
from app.tts.personas import Voice, profile_for
from tests.api.test_bad_input import assert_error_body
from tests.fakes import elevenlabs_api
from tests.fakes.elevenlabs_server import FakeElevenLabs

AGENTS = "/api/v1/voice/agents"
SYNTHESIZE = "/api/v1/voice/synthesize"
STREAMING = "/api/v1/voice/streaming/synthesize/streaming"
OVERRIDE_VOICE = "21m00Tcm4TlvDq8ikWAM"
FALLBACK_VOICE = "AZnzlk1XvdvUeBnXmlld"

FRONT_DESK: dict[str, Any] = {
    "display_name": "Maple Realty front desk",
    "persona": "friendly",
    "languages": ["en", "es"],
    "custom_phrases": ["Thanks for calling Maple Realty!"],
}


@pytest.fixture
def account_voices(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake account's own voices (a cloned one, say) besides the premade ones."""
    for voice_id, name in ((OVERRIDE_VOICE, "Rachel"), (FALLBACK_VOICE, "Domi")):
        monkeypatch.setitem(elevenlabs_api.VOICES, voice_id, Voice(voice_id=voice_id, name=name))


def _assert_invalid(response: httpx.Response, field: str) -> None:
    error = assert_error_body(response, 422, "validation_error")
    assert isinstance(error["details"], list)
    for detail in error["details"]:
        assert set(detail) == {"loc", "msg", "type"}
    assert any(field in detail["loc"] for detail in error["details"]), error["details"]


def _upstream_paths(elevenlabs: FakeElevenLabs) -> list[str]:
    return [r.path for r in elevenlabs.stats().requests]


def _stream_path(voice_id: str) -> str:
    return f"/v1/text-to-speech/{voice_id}/stream"


async def test_a_new_agent_is_created_with_201_and_replaced_with_200(
    client: httpx.AsyncClient,
) -> None:
    created = await client.put(f"{AGENTS}/front-desk", json=FRONT_DESK)

    assert created.status_code == 201, created.text
    first = created.json()
    assert first["voice_agent_id"] == "front-desk"
    assert first["created_at"] == first["updated_at"]

    replaced = await client.put(
        f"{AGENTS}/front-desk", json={**FRONT_DESK, "persona": "casual", "active": False}
    )

    assert replaced.status_code == 200, replaced.text
    second = replaced.json()
    assert second["persona"] == "casual"
    assert second["active"] is False
    assert second["created_at"] == first["created_at"]
    assert second["updated_at"] > first["updated_at"]


async def test_get_returns_what_was_put_with_its_defaults_filled_in(
    client: httpx.AsyncClient,
) -> None:
    spec = {
        **FRONT_DESK,
        "voice_overrides": {"es": {"voice_id": OVERRIDE_VOICE, "name": "Rachel"}},
        "fallback_voice": {"voice_id": FALLBACK_VOICE},
    }
    put = await client.put(f"{AGENTS}/agent_maple.realty:01", json=spec)
    assert put.status_code == 201, put.text

    response = await client.get(f"{AGENTS}/agent_maple.realty:01")

    assert response.status_code == 200
    agent = response.json()
    assert agent == put.json()
    assert agent["voice_agent_id"] == "agent_maple.realty:01"
    assert agent["display_name"] == spec["display_name"]
    assert agent["persona"] == "friendly"
    assert agent["languages"] == ["en", "es"]
    assert agent["custom_phrases"] == spec["custom_phrases"]
    assert agent["voice_overrides"] == {"es": {"voice_id": OVERRIDE_VOICE, "name": "Rachel"}}
    assert agent["fallback_voice"] == {"voice_id": FALLBACK_VOICE, "name": "custom"}
    assert agent["active"] is True


async def test_only_a_display_name_is_needed_and_the_rest_defaults(
    client: httpx.AsyncClient,
) -> None:
    response = await client.put(f"{AGENTS}/minimal", json={"display_name": "Minimal"})

    assert response.status_code == 201, response.text
    agent = response.json()
    assert agent["persona"] == "professional"
    assert agent["languages"] == ["en"]
    assert agent["custom_phrases"] == []
    assert agent["voice_overrides"] == {}
    assert agent["fallback_voice"] is None
    assert agent["active"] is True


async def test_a_deleted_agent_is_gone_and_deleting_it_again_is_404(
    client: httpx.AsyncClient,
) -> None:
    await client.put(f"{AGENTS}/front-desk", json=FRONT_DESK)

    deleted = await client.delete(f"{AGENTS}/front-desk")

    assert deleted.status_code == 204
    assert deleted.content == b""
    error = assert_error_body(await client.get(f"{AGENTS}/front-desk"), 404, "agent_not_found")
    assert error["details"] == {"voice_agent_id": "front-desk"}
    assert_error_body(await client.delete(f"{AGENTS}/front-desk"), 404, "agent_not_found")


async def test_an_agent_that_never_existed_is_404_agent_not_found(
    client: httpx.AsyncClient,
) -> None:
    assert_error_body(await client.get(f"{AGENTS}/nobody"), 404, "agent_not_found")
    assert_error_body(await client.delete(f"{AGENTS}/nobody"), 404, "agent_not_found")


@pytest.mark.parametrize(
    "voice_agent_id",
    ["front desk", "a" * 65, "-leading-dash", "agent$"],
)
async def test_an_invalid_agent_id_in_the_path_gets_422(
    client: httpx.AsyncClient, voice_agent_id: str
) -> None:
    response = await client.put(f"{AGENTS}/{voice_agent_id}", json=FRONT_DESK)

    _assert_invalid(response, "voice_agent_id")
    _assert_invalid(await client.get(f"{AGENTS}/{voice_agent_id}"), "voice_agent_id")


async def test_an_agent_id_of_exactly_64_characters_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    response = await client.put(f"{AGENTS}/{'a' * 64}", json=FRONT_DESK)

    assert response.status_code == 201, response.text


async def test_repeated_languages_get_422(client: httpx.AsyncClient) -> None:
    response = await client.put(
        f"{AGENTS}/front-desk", json={**FRONT_DESK, "languages": ["en", "es", "en"]}
    )

    _assert_invalid(response, "languages")


async def test_a_custom_phrase_with_a_control_character_gets_422(
    client: httpx.AsyncClient,
) -> None:
    response = await client.put(
        f"{AGENTS}/front-desk",
        json={**FRONT_DESK, "custom_phrases": ["Welcome!", "Thanks\x00 for calling"]},
    )

    _assert_invalid(response, "custom_phrases")


async def test_a_voice_override_with_bad_characters_in_its_voice_id_gets_422(
    client: httpx.AsyncClient,
) -> None:
    response = await client.put(
        f"{AGENTS}/front-desk",
        json={**FRONT_DESK, "voice_overrides": {"en": {"voice_id": "../../v1/user"}}},
    )

    _assert_invalid(response, "voice_id")


async def test_an_unknown_field_gets_422(client: httpx.AsyncClient) -> None:
    response = await client.put(f"{AGENTS}/front-desk", json={**FRONT_DESK, "volume": 11})

    _assert_invalid(response, "volume")


async def test_a_body_that_is_not_json_gets_415(client: httpx.AsyncClient) -> None:
    response = await client.put(
        f"{AGENTS}/front-desk",
        content=b"display_name=Front+desk",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )

    assert_error_body(response, 415, "unsupported_media_type")
    assert_error_body(await client.get(f"{AGENTS}/front-desk"), 404, "agent_not_found")


async def test_a_stored_agent_speaks_in_its_persona_when_the_request_names_none(
    client: httpx.AsyncClient,
) -> None:
    await client.put(f"{AGENTS}/front-desk", json=FRONT_DESK)

    response = await client.post(
        SYNTHESIZE, json={"text": "Thank you for calling.", "voice_agent_id": "front-desk"}
    )

    assert response.status_code == 200
    assert response.headers["x-persona"] == "friendly"


async def test_a_persona_named_in_the_request_wins_over_the_agents(
    client: httpx.AsyncClient,
) -> None:
    await client.put(f"{AGENTS}/front-desk", json=FRONT_DESK)

    response = await client.post(
        SYNTHESIZE,
        json={
            "text": "Thank you for calling.",
            "voice_agent_id": "front-desk",
            "persona": "casual",
        },
    )

    assert response.status_code == 200
    assert response.headers["x-persona"] == "casual"


async def test_an_unknown_agent_does_not_fail_synthesis_and_the_default_persona_speaks(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        SYNTHESIZE, json={"text": "Thank you for calling.", "voice_agent_id": "nobody"}
    )

    assert response.status_code == 200
    assert response.headers["x-persona"] == "professional"


async def test_a_deleted_agent_no_longer_sets_the_persona(client: httpx.AsyncClient) -> None:
    await client.put(f"{AGENTS}/front-desk", json=FRONT_DESK)
    body = {"text": "Thank you for calling.", "voice_agent_id": "front-desk"}
    before = await client.post(SYNTHESIZE, json=body)
    await client.delete(f"{AGENTS}/front-desk")

    after = await client.post(SYNTHESIZE, json=body)

    assert before.headers["x-persona"] == "friendly"
    assert after.status_code == 200
    assert after.headers["x-persona"] == "professional"


async def test_the_streaming_route_speaks_in_the_agents_persona(
    client: httpx.AsyncClient,
) -> None:
    await client.put(f"{AGENTS}/front-desk", json={**FRONT_DESK, "persona": "authoritative"})

    response = await client.post(
        STREAMING, json={"text": "Thank you for calling.", "voice_agent_id": "front-desk"}
    )

    assert response.status_code == 200
    assert response.headers["x-persona"] == "authoritative"
    assert len(response.content) > 0


async def test_a_voice_override_replaces_the_personas_elevenlabs_voice(
    upstream_client: httpx.AsyncClient, elevenlabs: FakeElevenLabs, account_voices: None
) -> None:
    await upstream_client.put(
        f"{AGENTS}/front-desk",
        json={**FRONT_DESK, "voice_overrides": {"en": {"voice_id": OVERRIDE_VOICE}}},
    )

    response = await upstream_client.post(
        SYNTHESIZE,
        json={"text": "Welcome to the open house.", "voice_agent_id": "front-desk"},
    )

    assert response.status_code == 200
    assert response.headers["x-provider"] == "elevenlabs"
    assert response.headers["x-persona"] == "friendly"
    assert _upstream_paths(elevenlabs) == [_stream_path(OVERRIDE_VOICE)]


async def test_a_voice_override_applies_only_to_its_own_language(
    upstream_client: httpx.AsyncClient, elevenlabs: FakeElevenLabs, account_voices: None
) -> None:
    await upstream_client.put(
        f"{AGENTS}/front-desk",
        json={**FRONT_DESK, "voice_overrides": {"en": {"voice_id": OVERRIDE_VOICE}}},
    )
    spanish = profile_for(Persona.FRIENDLY).voice_for(Language.ES).voice_id

    response = await upstream_client.post(
        SYNTHESIZE,
        json={"text": "Bienvenidos a la casa abierta.", "voice_agent_id": "front-desk"},
    )

    assert response.status_code == 200
    assert response.headers["x-language"] == "es"
    assert _upstream_paths(elevenlabs) == [_stream_path(spanish)]


async def test_replacing_an_agent_without_its_override_brings_back_the_personas_voice(
    upstream_client: httpx.AsyncClient, elevenlabs: FakeElevenLabs, account_voices: None
) -> None:
    body = {"text": "Welcome to the open house.", "voice_agent_id": "front-desk"}
    await upstream_client.put(
        f"{AGENTS}/front-desk",
        json={**FRONT_DESK, "voice_overrides": {"en": {"voice_id": OVERRIDE_VOICE}}},
    )
    first = await upstream_client.post(SYNTHESIZE, json=body)
    replaced = await upstream_client.put(f"{AGENTS}/front-desk", json=FRONT_DESK)
    assert replaced.status_code == 200

    second = await upstream_client.post(SYNTHESIZE, json=body)

    assert first.status_code == second.status_code == 200
    assert second.headers["x-cache"] == "miss"
    persona_voice = profile_for(Persona.FRIENDLY).voice_for(Language.EN).voice_id
    assert _upstream_paths(elevenlabs) == [
        _stream_path(OVERRIDE_VOICE),
        _stream_path(persona_voice),
    ]


async def test_an_agents_fallback_voice_replaces_the_personas_fallback(
    upstream_client: httpx.AsyncClient, elevenlabs: FakeElevenLabs, account_voices: None
) -> None:
    await upstream_client.put(
        f"{AGENTS}/front-desk", json={**FRONT_DESK, "fallback_voice": {"voice_id": FALLBACK_VOICE}}
    )
    elevenlabs.behavior.status = 500
    elevenlabs.behavior.fail_first_n = 3  # the persona voice and its two retries

    response = await upstream_client.post(
        SYNTHESIZE,
        json={"text": "Welcome to the open house.", "voice_agent_id": "front-desk"},
    )

    assert response.status_code == 200
    assert response.headers["x-provider"] == "elevenlabs"
    paths = _upstream_paths(elevenlabs)
    primary = profile_for(Persona.FRIENDLY).voice_for(Language.EN).voice_id
    assert paths[0] == _stream_path(primary)
    assert paths[-1] == _stream_path(FALLBACK_VOICE)
