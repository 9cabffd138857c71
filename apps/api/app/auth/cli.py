"""`python -m app.auth.cli`: create, list, rotate and revoke API keys in the state Redis."""

import argparse
import asyncio
import secrets
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from redis.asyncio import Redis

from app.auth.keys import new_key
from app.auth.models import KeyInfo
from app.auth.pepper import load_pepper
from app.auth.scopes import parse_scopes
from app.auth.store import KeyStore
from app.config import get_settings
from app.errors import AppError


def _scopes(text: str) -> list[str]:
    try:
        return sorted(parse_scopes(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app.auth.cli", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="make a key; its secret is printed only once")
    create.add_argument("--name", required=True)
    create.add_argument("--scopes", required=True, type=_scopes, help="e.g. synthesize,stream")
    create.add_argument("--expires-in-days", type=float, default=None)
    create.add_argument("--rpm", type=_positive_int, default=None, help="requests per minute")
    create.add_argument("--cpm", type=_positive_int, default=None, help="characters per minute")
    commands.add_parser("list", help="every key, without secrets")
    rotate = commands.add_parser("rotate", help="a new secret; the old one lasts the grace")
    rotate.add_argument("id")
    rotate.add_argument("--grace-s", type=int, default=None, help="default: AUTH__ROTATION_GRACE_S")
    revoke = commands.add_parser("revoke", help="end a key at once")
    commands.add_parser(
        "bootstrap",
        help="print a new key and pepper for AUTH__BOOTSTRAP_ADMIN_KEY and AUTH__PEPPER "
        "(stores nothing)",
    )
    revoke.add_argument("id")
    return parser


def _when(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _table(keys: Sequence[KeyInfo]) -> str:
    now = time.time()
    header = ("ID", "NAME", "SCOPES", "STATUS", "CREATED", "EXPIRES", "RPM", "CPM")
    rows = [header] + [
        (
            k.id,
            k.name,
            ",".join(k.scopes),
            k.status(now).value,
            _when(k.created_at),
            _when(k.expires_at),
            str(k.requests_per_minute or "-"),
            str(k.characters_per_minute or "-"),
        )
        for k in keys
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


async def _run(args: argparse.Namespace) -> str:
    settings = get_settings()
    async with Redis.from_url(settings.redis.url) as redis:
        store = KeyStore(redis, await load_pepper(redis, settings.auth))
        if args.command == "create":
            days = args.expires_in_days
            created = await store.create(
                args.name,
                args.scopes,
                expires_in_s=None if days is None else days * 86_400,
                requests_per_minute=args.rpm,
                characters_per_minute=args.cpm,
            )
            return f"key id: {created.info.id}\nAPI key (shown only this once): {created.key}"
        if args.command == "list":
            return _table(await store.list())
        if args.command == "rotate":
            grace = settings.auth.rotation_grace_s if args.grace_s is None else args.grace_s
            created = await store.rotate(args.id, grace)
            return (
                f"key id: {created.info.id}\nnew API key (shown only this once): {created.key}\n"
                f"the previous secret works until {_when(created.info.previous_valid_until)}"
            )
        info = await store.revoke(args.id)
        return f"revoked {info.id} at {_when(info.revoked_at)}"


def _bootstrap() -> str:
    return f"AUTH__BOOTSTRAP_ADMIN_KEY={new_key()[2]}\nAUTH__PEPPER={secrets.token_urlsafe(32)}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "bootstrap":  # needs no Redis
        sys.stdout.write(_bootstrap() + "\n")
        return 0
    try:
        output = asyncio.run(_run(args))
    except AppError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 1
    sys.stdout.write(output + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
