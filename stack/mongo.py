"""SecantusDB, the embedded mongod-compatible server, as a child process."""

from __future__ import annotations

from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from stack.processes import ManagedProcess, find_executable

__all__ = ["MongoServer"]


class MongoServer(ManagedProcess):
    """SecantusDB on ``storage_path``, advertising the single-node replica set "secantus"."""

    def __init__(
        self,
        *,
        storage_path: Path,
        port: int,
        log_path: Path,
        host: str = "127.0.0.1",
        config_path: Path | None = None,
        name: str = "mongo",
    ) -> None:
        self.host = host
        self.port = port
        self.storage_path = Path(storage_path)
        # secantusd-py otherwise picks up ./secantusd.toml, ~/.secantus/... or /etc/secantus/...
        # (e.g. one that turns on --auth); an explicit empty file keeps the stack reproducible.
        self.config_path = config_path or self.storage_path.parent / "secantusd.toml"
        super().__init__(
            name,
            [
                find_executable("secantusd-py"),
                "--config",
                str(self.config_path),
                "--host",
                host,
                "--port",
                str(port),
                "--storage-path",
                str(self.storage_path),
                # Durable on commit, like mongod's journal with j:true: an acknowledged write
                # (an outbox row above all) must survive a crash of the machine.
                "--sync-on-commit",
            ],
            log_path=log_path,
            ready_check=self.is_ready,
        )

    @property
    def url(self) -> str:
        # directConnection: talk to this one node without replica-set discovery, so the
        # advertised member address never has to be resolvable from the client.
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    def start(self) -> None:
        self.storage_path.mkdir(parents=True, exist_ok=True)
        if not self.config_path.exists():
            self.config_path.write_text(
                "# Intentionally empty: the command line of stack/mongo.py sets everything.\n",
                encoding="utf-8",
            )
        super().start()

    def is_ready(self) -> bool:
        client: MongoClient[dict[str, object]] = MongoClient(
            self.url, serverSelectionTimeoutMS=500, connectTimeoutMS=500
        )
        try:
            client.admin.command("hello")
        except PyMongoError:
            return False
        finally:
            client.close()
        return True
