"""GET /api/v1/voice/profiles."""

import httpx

from app.tts.models import Persona


async def test_profiles_list_the_five_personas_with_every_part_of_their_voice(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/voice/profiles")

    assert response.status_code == 200
    body = response.json()
    profiles = {p["persona"]: p for p in body["profiles"]}
    assert set(profiles) == {p.value for p in Persona}
    for profile in profiles.values():
        assert set(profile["voices"]) == {"en", "es", "zh"}
        assert profile["model_id"].startswith("eleven_")
        assert profile["fallback_voice"]["voice_id"]
        assert {"stability", "similarity_boost", "style", "speed"} <= set(profile["settings"])
        assert {"variant", "rate_wpm", "pitch"} <= set(profile["offline"])
    assert body["offline_language_voices"] == {"en": "en-us", "es": "es-419", "zh": "cmn"}
