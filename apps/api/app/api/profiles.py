"""GET /profiles: the five personas and everything that makes up their voices."""

from fastapi import APIRouter
from pydantic import BaseModel

from app.tts.personas import OFFLINE_LANGUAGE_VOICES, PROFILES, VoiceProfile

router = APIRouter(tags=["voices"])


class ProfilesResponse(BaseModel):
    profiles: list[VoiceProfile]
    offline_language_voices: dict[str, str]


@router.get("/profiles", name="list_profiles", summary="The five persona voice profiles")
async def list_profiles() -> ProfilesResponse:
    return ProfilesResponse(
        profiles=list(PROFILES.values()),
        offline_language_voices={k.value: v for k, v in OFFLINE_LANGUAGE_VOICES.items()},
    )
