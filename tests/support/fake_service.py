"""A stand-in for a samskab service: answers ``<name>.health`` and nothing else.

``python -m tests.support.fake_service <name>`` (from the repository root), with
SAMSKAB_NATS_URL set. The reply carries the pid and the SAMSKAB_* environment so tests can
tell a restarted process from the old one and check what the launcher passed down.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

import nats
from nats.aio.msg import Msg


async def run(name: str, nats_url: str) -> None:
    # Keep reconnecting: the supervisor test restarts this process, not nats-server, but a
    # stand-in that gave up on a blip would look like a supervisor bug.
    # As the user the stack gave it (an embedded stack admits no one else); none on a
    # test's open server.
    user = os.environ.get("SAMSKAB_NATS_USER") or None
    nc = await nats.connect(
        nats_url,
        user=user,
        password=os.environ.get("SAMSKAB_NATS_PASSWORD") or None,
        inbox_prefix=f"_INBOX_{user}" if user else "_INBOX",
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
    )

    async def health(msg: Msg) -> None:
        env = {key: value for key, value in os.environ.items() if key.startswith("SAMSKAB_")}
        reply = {"ok": True, "result": {"service": name, "pid": os.getpid(), "env": env}}
        await msg.respond(json.dumps(reply).encode())

    await nc.subscribe(f"{name}.health", cb=health)
    await nc.flush()
    print(f"fake service {name} ready (pid {os.getpid()})", flush=True)

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await nc.drain()


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -m tests.support.fake_service <name>", file=sys.stderr)
        return 2
    asyncio.run(run(sys.argv[1], os.environ.get("SAMSKAB_NATS_URL", "nats://127.0.0.1:4222")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
