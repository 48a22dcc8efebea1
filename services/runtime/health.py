"""Container health check: ``python -m services.runtime.health SERVICE`` exits 0 when the
service answers on NATS (and so has its database and the bus)."""

from __future__ import annotations

import asyncio
import os
import sys

from contracts.errors import ServiceError
from contracts.operations import GetHealth, health
from services.runtime.client import ServiceClient
from services.runtime.settings import SamskabSettings


async def check(service: str) -> None:
    async with ServiceClient(SamskabSettings(), actor="service:healthcheck") as client:
        await client.call(health(service), GetHealth(), timeout=3)


def main() -> int:
    service = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SAMSKAB_SERVICE", "")
    if not service:
        print("usage: python -m services.runtime.health SERVICE", file=sys.stderr)
        return 2
    try:
        asyncio.run(check(service))
    except ServiceError as exc:
        print(f"{service}: {exc.error.message}", file=sys.stderr)
        return 1
    print(f"{service}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
