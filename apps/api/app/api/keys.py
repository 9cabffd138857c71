"""/api/v1/keys: create, list, rotate and revoke API keys (admin scope). Secrets shown once."""

from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas import ERROR_RESPONSES, NOT_FOUND, ErrorBody
from app.auth.models import KeyInfo
from app.auth.scopes import Scope
from app.auth.store import KeyStore
from app.deps import ServicesDep

router = APIRouter(prefix="/api/v1/keys", tags=["keys"])
_REVOKED = {"model": ErrorBody, "description": "The key is already revoked."}

KeyId = Annotated[str, Path(pattern=r"^[a-z0-9]{12}$", description="The key's id (sv_<id>_…)")]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[\w .:@/-]+$")
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))
    expires_in_days: float | None = Field(default=None, gt=0, le=3650)
    requests_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    characters_per_minute: int | None = Field(default=None, ge=1, le=100_000_000)


class KeyRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_s: float | None = Field(
        default=None, ge=0, le=30 * 86400, description="Default: AUTH__ROTATION_GRACE_S."
    )


class NewKey(BaseModel):
    key: str = Field(description="The full key, shown this once: only its hash is kept.")
    info: KeyInfo


class KeyList(BaseModel):
    keys: list[KeyInfo]


async def _store(services: ServicesDep) -> KeyStore:
    return await services.access.store()


@router.post(
    "",
    name="create_key",
    summary="Create an API key; its secret is in this answer only",
    status_code=201,
    response_model=NewKey,
    responses=ERROR_RESPONSES,
)
async def create_key(body: KeyCreate, services: ServicesDep, response: Response) -> NewKey:
    response.headers["Cache-Control"] = "no-store"  # the secret must not linger anywhere
    store = await _store(services)
    created = await store.create(
        body.name,
        frozenset(body.scopes),
        expires_in_s=body.expires_in_days * 86400 if body.expires_in_days else None,
        requests_per_minute=body.requests_per_minute,
        characters_per_minute=body.characters_per_minute,
    )
    return NewKey(key=created.key, info=created.info)


@router.get("", name="list_keys", summary="Every key, without secrets", responses=ERROR_RESPONSES)
async def list_keys(services: ServicesDep) -> KeyList:
    return KeyList(keys=await (await _store(services)).list())


@router.get("/{key_id}", name="get_key", summary="One key", responses=NOT_FOUND)
async def get_key(key_id: KeyId, services: ServicesDep) -> KeyInfo:
    return await (await _store(services)).require(key_id)


@router.post(
    "/{key_id}/rotate",
    name="rotate_key",
    summary="A new secret; the old one stays valid for the grace period",
    response_model=NewKey,
    responses={**ERROR_RESPONSES, **NOT_FOUND, 409: _REVOKED},
)
async def rotate_key(
    key_id: KeyId, services: ServicesDep, response: Response, body: KeyRotate | None = None
) -> NewKey:
    response.headers["Cache-Control"] = "no-store"
    grace_s = body.grace_s if body is not None and body.grace_s is not None else None
    store = await _store(services)
    created = await store.rotate(
        key_id, services.access.rotation_grace_s if grace_s is None else grace_s
    )
    return NewKey(key=created.key, info=created.info)


@router.delete(
    "/{key_id}",
    name="revoke_key",
    summary="Revoke a key: refused by every process from the next request",
    responses={**NOT_FOUND, 409: _REVOKED},
)
async def revoke_key(key_id: KeyId, services: ServicesDep) -> KeyInfo:
    return await (await _store(services)).revoke(key_id)
