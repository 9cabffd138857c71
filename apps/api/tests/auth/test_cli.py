"""`python -m app.auth.cli` as an operator runs it, against the test's Redis."""

import asyncio
import os
import re
import sys
from pathlib import Path

import redis.asyncio as aioredis

from app.auth import Guard, Outcome, Scope
from app.auth.keys import hash_secret, parse_key
from tests.auth.conftest import PEPPER, auth_settings

API_DIR = Path(__file__).resolve().parents[2]
KEY = re.compile(r"sv_[a-z0-9]{12}_[A-Za-z0-9_-]+")


async def _cli(redis_url: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "REDIS_URL": redis_url, "REDIS__URL": redis_url, "AUTH__PEPPER": PEPPER}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.auth.cli",
        *args,
        cwd=API_DIR,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _key(output: str) -> str:
    found = KEY.search(output)
    assert found is not None, output
    return found.group()


async def test_keys_are_created_listed_rotated_and_revoked_from_the_command_line(
    fresh_redis: str, redis_client: aioredis.Redis
) -> None:
    guard = Guard(redis_client, PEPPER, auth_settings())

    code, out, _ = await _cli(
        fresh_redis, "create", "--name", "frontend", "--scopes", "synthesize,stream", "--rpm", "30"
    )
    assert code == 0
    first = _key(out)
    parsed = parse_key(first)
    assert parsed is not None
    verdict = await guard.check(first, Scope.STREAM)
    assert verdict.ok
    assert verdict.rate is not None
    assert verdict.rate.limit == 30

    code, listing, _ = await _cli(fresh_redis, "list")
    assert code == 0
    line = next(row for row in listing.splitlines() if parsed.id in row)
    assert "frontend" in line
    assert "stream,synthesize" in line
    assert "active" in line
    assert parsed.secret not in listing
    assert hash_secret(parsed.secret, PEPPER) not in listing

    code, out, _ = await _cli(fresh_redis, "rotate", parsed.id, "--grace-s", "60")
    assert code == 0
    second = _key(out)
    assert second != first
    assert (await guard.check(second, Scope.SYNTHESIZE)).ok
    assert (await guard.check(first, Scope.SYNTHESIZE)).ok

    code, out, _ = await _cli(fresh_redis, "revoke", parsed.id)
    assert code == 0
    assert parsed.id in out
    assert (await guard.check(second, Scope.SYNTHESIZE)).outcome is Outcome.REVOKED

    code, listing, _ = await _cli(fresh_redis, "list")
    assert "revoked" in next(row for row in listing.splitlines() if parsed.id in row)
    assert KEY.search(listing) is None


async def test_the_command_line_refuses_unknown_ids_and_scopes(fresh_redis: str) -> None:
    code, _, err = await _cli(fresh_redis, "revoke", "abcdef012345")
    assert code == 1
    assert "abcdef012345" in err

    code, _, err = await _cli(fresh_redis, "create", "--name", "x", "--scopes", "everything")
    assert code == 2
    assert "unknown scope" in err


async def test_bootstrap_prints_settings_the_service_accepts(fresh_redis: str) -> None:
    code, out, _ = await _cli(fresh_redis, "bootstrap")

    values = dict(line.split("=", 1) for line in out.splitlines())
    settings = auth_settings().model_validate(
        {
            "pepper": values["AUTH__PEPPER"],
            "bootstrap_admin_key": values["AUTH__BOOTSTRAP_ADMIN_KEY"],
        }
    )
    assert code == 0
    assert settings.bootstrap_admin_key is not None
    assert parse_key(settings.bootstrap_admin_key.get_secret_value()) is not None
