"""A 3-node NATS cluster on loopback, started from the shipped ``deploy/nats/cluster/n*.conf``.

Each node runs its own shipped config (server name, fsync always, the route authorization,
``include ../accounts.conf``: the shipped users and permissions), copied beside a copy of
the shipped accounts file with one line changed, its store directory (nats-server refuses
``-sd`` next to a configured one). What else differs on one machine is given as flags:
loopback, and its own client, monitoring and route ports. The route list and the users'
passwords come from the environment, as the config files say they do in production.
"""

from __future__ import annotations

import json
import os
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.runtime.client import inbox_prefix
from stack import nats_accounts
from stack.nats_accounts import password_variable
from stack.processes import ManagedProcess, find_executable, free_port
from tests.support.stack import REPO_ROOT

__all__ = ["CLUSTER_DIR", "Cluster", "Node", "start_cluster"]

CLUSTER_DIR = REPO_ROOT / "deploy" / "nats" / "cluster"
ROUTE_USER = "route"
SHIPPED_STORE = "store_dir: /data\n"


def _config_copy(directory: Path, name: str) -> Path:
    """``directory/<name>/<name>.conf``: the shipped config storing under ``directory/<name>``,
    its ``../accounts.conf`` the shipped one."""
    shipped = (CLUSTER_DIR / f"{name}.conf").read_text(encoding="utf-8")
    if SHIPPED_STORE not in shipped:
        raise ValueError(f"{name}.conf no longer says {SHIPPED_STORE.strip()!r}")
    home = directory / name
    home.mkdir(parents=True, exist_ok=True)
    accounts = CLUSTER_DIR.parent / "accounts.conf"
    (directory / "accounts.conf").write_text(accounts.read_text(encoding="utf-8"), "utf-8")
    config = home / f"{name}.conf"
    config.write_text(
        shipped.replace(SHIPPED_STORE, f"store_dir: {json.dumps(str(home))}\n"), "utf-8"
    )
    return config


@dataclass
class Node:
    """One node: its shipped config's server name and its loopback ports."""

    name: str
    port: int
    http_port: int
    route_port: int
    process: ManagedProcess

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def is_ready(self) -> bool:
        """Up, and JetStream current with the cluster (``/healthz`` checks the meta group)."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.http_port}/healthz", timeout=1.0
            ) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False


@dataclass
class Cluster:
    nodes: list[Node]
    # Every shipped user's password, as the nodes read them from their environment.
    passwords: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """SAMSKAB_NATS_URL for a client of the cluster: every node, comma-separated."""
        return ",".join(node.url for node in self.nodes)

    def node(self, name: str) -> Node:
        (found,) = [node for node in self.nodes if node.name == name]
        return found

    def login(self, user: str) -> dict[str, str]:
        """``nats.connect`` keywords of a shipped user (who reads replies on its own inbox)."""
        return {"user": user, "password": self.passwords[user], "inbox_prefix": inbox_prefix(user)}

    def running(self) -> list[Node]:
        return [node for node in self.nodes if node.process.running]

    def wait_ready(self, nodes: Iterable[Node] | None = None, timeout: float = 30.0) -> None:
        for node in nodes if nodes is not None else self.nodes:
            node.process.wait_ready(node.is_ready, timeout=timeout, interval=0.2)

    def stop(self) -> None:
        for node in self.nodes:
            node.process.stop()


def _environment(passwords: Mapping[str, str], route_password: str, routes: str) -> dict[str, str]:
    return {
        **os.environ,
        **{password_variable(user): password for user, password in passwords.items()},
        "NATS_CLUSTER_PASSWORD": route_password,
        "NATS_ROUTES": routes,
    }


def start_cluster(directory: Path, *, timeout: float = 30.0) -> Cluster:
    """Start n1, n2 and n3 and wait until each is healthy with the cluster formed."""
    route_password = secrets.token_hex(16)
    passwords = {user: secrets.token_hex(16) for user in nats_accounts.USERS}
    ports = {f"n{i}": (free_port(), free_port(), free_port()) for i in (1, 2, 3)}
    routes = ", ".join(
        f"nats-route://{ROUTE_USER}:{route_password}@127.0.0.1:{route}"
        for _, _, route in ports.values()
    )
    env = _environment(passwords, route_password, f"[{routes}]")
    nodes = []
    for name, (port, http_port, route_port) in ports.items():
        argv = [
            find_executable("nats-server"),
            "-c",
            str(_config_copy(directory, name)),
            "-a",
            "127.0.0.1",
            "-p",
            str(port),
            "-m",
            str(http_port),
            # The flag replaces the config's listen address; with the credentials in it the
            # route authorization of the config stays.
            "--cluster",
            f"nats://{ROUTE_USER}:{route_password}@127.0.0.1:{route_port}",
        ]
        process = ManagedProcess(
            f"nats-{name}", argv, log_path=directory / "log" / f"{name}.log", env=env
        )
        nodes.append(Node(name, port, http_port, route_port, process))
    cluster = Cluster(nodes, passwords)
    for node in nodes:
        node.process.start()
    try:
        cluster.wait_ready(timeout=timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster
