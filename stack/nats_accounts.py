"""The NATS users and their permissions, generated from the services registry.

One source for every stack: ``deploy/nats/accounts.conf`` (docker-compose and the cluster
configs include it) is this module's output, checked by ``tests/unit/test_registry.py``,
and the embedded stack (``make up``) writes the same text next to its nats-server config.
After a change to the registry (a service built, a bucket added) regenerate the file:
``.venv/bin/python -m stack.nats_accounts``.

Passwords are not in the text: each user's is the NATS config variable
``$<USER>_NATS_PASSWORD``, which the server reads from its environment (docker-compose's
``environment:``, the embedded stack's generated credentials).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterable
from pathlib import Path

from services import registry
from services.registry import ServiceEntry

__all__ = ["ACCOUNTS_FILE", "USERS", "password_variable", "render"]

ACCOUNTS_FILE = Path(__file__).resolve().parents[1] / "deploy" / "nats" / "accounts.conf"

CLI_USER = "cli"
WEB_USER = registry.WEB
# Every user the text defines: a service each, the operators' CLI and the public website.
USERS: tuple[str, ...] = (*registry.names(), CLI_USER, WEB_USER)

INDENT = " " * 14


def password_variable(user: str) -> str:
    """The environment variable the server takes ``user``'s password from."""
    return f"{user.upper()}_NATS_PASSWORD"


def _quoted(subjects: Iterable[str]) -> str:
    return ", ".join(f'"{subject}"' for subject in subjects)


def _lines(*groups: Iterable[str]) -> list[str]:
    return [INDENT + _quoted(group) for group in groups]


def _comment(text: str) -> list[str]:
    return [f"{INDENT}# {line}" for line in text.splitlines()]


def _own_bucket(bucket: str) -> list[str]:
    obj = f"OBJ_{bucket}"
    return _lines(
        [f"$O.{bucket}.>", f"$JS.API.STREAM.*.{obj}", f"$JS.API.STREAM.MSG.*.{obj}"],
        [f"$JS.API.DIRECT.GET.{obj}", f"$JS.API.DIRECT.GET.{obj}.>", f"$JS.FC.{obj}.>"],
        [f"$JS.API.CONSUMER.*.{obj}", f"$JS.API.CONSUMER.*.{obj}.>"],
    )


def _read_bucket(bucket: str) -> list[str]:
    """Read-only: get objects (an ordered consumer reads the chunks), nothing else."""
    obj = f"OBJ_{bucket}"
    return _lines(
        [f"$JS.API.STREAM.INFO.{obj}", f"$JS.API.STREAM.MSG.GET.{obj}"],
        [f"$JS.API.DIRECT.GET.{obj}", f"$JS.API.DIRECT.GET.{obj}.>"],
        [f"$JS.API.CONSUMER.CREATE.{obj}", f"$JS.API.CONSUMER.CREATE.{obj}.>"],
        [f"$JS.API.CONSUMER.DELETE.{obj}.*", f"$JS.FC.{obj}.>"],
    )


def _write_bucket(bucket: str) -> list[str]:
    """Put objects (chunks, then the meta message; a failed put purges its own chunks)."""
    obj = f"OBJ_{bucket}"
    return _lines(
        [f"$O.{bucket}.>", f"$JS.API.STREAM.MSG.GET.{obj}"],
        [f"$JS.API.DIRECT.GET.{obj}", f"$JS.API.DIRECT.GET.{obj}.>"],
        [f"$JS.API.STREAM.PURGE.{obj}"],
    )


def _consumer_of(stream: str, consumer: str, *, own: bool) -> list[str]:
    durable = [
        f"$JS.API.CONSUMER.*.{stream}.{consumer}",
        f"$JS.API.CONSUMER.*.{stream}.{consumer}.>",
    ]
    if not own:
        durable = [f"$JS.API.STREAM.INFO.{stream}", f"$JS.API.STREAM.MSG.GET.{stream}", *durable]
    return _lines(
        durable, [f"$JS.API.CONSUMER.*.*.{stream}.{consumer}", f"$JS.ACK.{stream}.{consumer}.>"]
    )


def _service_publish(entry: ServiceEntry) -> list[str]:
    name, stream, dlq = entry.name, entry.stream, f"DLQ_{entry.stream}"
    lines = [
        *_comment(f"Its own subjects: events {name}.v1.>, requests to itself ({name}.health)."),
        *_lines([f"{name}.>"]),
        *_comment("Account info; stream lookup by subject."),
        *_lines(["$JS.API.INFO", "$JS.API.STREAM.NAMES"]),
        *_comment("Its event stream: create/update/info/purge, get/delete single messages."),
        *_lines([f"$JS.API.STREAM.*.{stream}", f"$JS.API.STREAM.MSG.*.{stream}"]),
        *_comment("Its dead-letter stream (captures MAX_DELIVERIES advisories of its consumer)."),
        *_lines(
            [f"$JS.API.STREAM.*.{dlq}", f"$JS.API.CONSUMER.*.{dlq}.{name}"],
            [
                f"$JS.API.CONSUMER.*.{dlq}.{name}.>",
                f"$JS.API.CONSUMER.*.*.{dlq}.{name}",
                f"$JS.ACK.{dlq}.{name}.>",
            ],
        ),
    ]
    for bucket in entry.buckets:
        lines += _comment(f'Its Object Store bucket "{bucket}": put/get/delete objects.')
        lines += _own_bucket(bucket)
    for bucket in entry.reads_buckets:
        lines += _comment(f'Reads the bucket "{bucket}" of another service (read-only).')
        lines += _read_bucket(bucket)
    lines += _comment(
        f'Events of every service: its durable consumer (named "{name}") on each stream\n'
        "(create/info/fetch), acks, and one message by sequence for a dead letter."
    )
    for other in registry.SERVICES:
        lines += _consumer_of(other.stream, name, own=other.name == name)
    return lines


def _opening(user: str) -> list[str]:
    """A user's entry up to its publish allow list."""
    return [
        "      {",
        f"        user: {user}",
        f"        password: ${password_variable(user)}",
        "        permissions: {",
        "          publish: {",
        "            allow: [",
    ]


def _service_user(entry: ServiceEntry) -> list[str]:
    name = entry.name
    streams = f"streams {entry.stream} and DLQ_{entry.stream}"
    buckets = ", ".join(f'"{b}"' for b in entry.buckets)
    owned = f", Object Store buckets {buckets}" if buckets else ""
    return [
        f"      # --- {name}: {streams}{owned} ---",
        *_opening(name),
        *_service_publish(entry),
        "            ]",
        "          }",
        "          subscribe: {",
        "            allow: [",
        *_comment("Requests it answers."),
        *_lines([f"{name}.cmd.>", f"{name}.query.>", f"{name}.health"]),
        *_comment("Events and dead-letter advisories (its consumers get them via _INBOX)."),
        *_lines(["*.v1.>", "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"]),
        *_comment("Replies to its requests and JetStream API calls, pulled messages."),
        *_lines([f"_INBOX_{name}.>"]),
        "            ]",
        "          }",
        "          # Answers a request on its reply subject without any publish right on _INBOX.>",
        "          # (which would let it write into every other client's inbox).",
        "          allow_responses: true",
        "        }",
        "      }",
    ]


def _cli_user() -> list[str]:
    publish = [
        *_lines(["*.cmd.>", "*.query.>", "*.health"]),
        *_comment(
            "Read-only JetStream state (dead letters are listed and replayed through the\n"
            "owning service's commands, not here)."
        ),
        *_lines(
            [
                "$JS.API.INFO",
                "$JS.API.STREAM.NAMES",
                "$JS.API.STREAM.LIST",
                "$JS.API.STREAM.INFO.*",
            ],
            ["$JS.API.CONSUMER.NAMES.*", "$JS.API.CONSUMER.LIST.*", "$JS.API.CONSUMER.INFO.*.*"],
        ),
    ]
    for bucket in registry.CLI_READS_BUCKETS:
        publish += _comment(f'Read the bucket "{bucket}" (ordered consumer for the chunks).')
        publish += _read_bucket(bucket)
    for bucket in registry.CLI_WRITES_BUCKETS:
        publish += _comment(
            f'Put an object into "{bucket}" (a NATS message holds at most 1 MB); the\n'
            "owning service takes it from there and deletes it."
        )
        publish += _write_bucket(bucket)
    return [
        "      # --- cli: operators (samskab CLI) ---",
        "      # Sends commands, queries and health checks to any service, reads the buckets named",
        "      # below, uploads news images, and may look at stream and consumer state. It cannot",
        "      # publish events, read events or touch stream configuration.",
        *_opening(CLI_USER),
        *publish,
        "            ]",
        "            # " + '"*.cmd.>" would also match e.g. "$O.cmd.x" (a bucket named cmd) or',
        "            # " + '"_INBOX.cmd.x". Only those matches are denied under "$O": a deny wins',
        "            # over any allow, and the uploads bucket above must stay writable.",
        '            deny: ["$O.cmd.>", "$O.query.>", "$O.health", "$KV.>", "_INBOX.>"]',
        "          }",
        "          subscribe: {",
        f'            allow: ["_INBOX_{CLI_USER}.>"]',
        "          }",
        "        }",
        "      }",
    ]


def public_subjects() -> list[str]:
    """The subjects of every endpoint declared public (a self sign-up, a link in a mail, a
    public page), of every service whose contracts exist."""
    subjects: list[str] = []
    for entry in registry.SERVICES:
        try:
            module = importlib.import_module(f"contracts.{entry.name}")
        except ModuleNotFoundError:
            continue  # a planned service: no contracts yet
        subjects += sorted(e.subject for e in module.Endpoints.all() if e.public)
    return subjects


def _web_user() -> list[str]:
    health = [f"{name}.health" for name in registry.built()]
    uploads: list[str] = []
    for bucket in registry.WEB_WRITES_BUCKETS:
        uploads += _comment(
            f'Put what a visitor sends (a story\'s pictures) into "{bucket}": look the bucket\n'
            "up and put objects (a put reads a name's meta message and purges its own chunks\n"
            "when it fails); no listing, no consumer, no stream configuration."
        )
        uploads += _lines([f"$JS.API.STREAM.INFO.OBJ_{bucket}"])
        uploads += _write_bucket(bucket)
    return [
        "      # --- web: the public website (web/) ---",
        "      # May ask only what the public may: the endpoints declared public in contracts/",
        "      # (sign-up, the links in mails, the public pages) and each service's health, and",
        "      # put uploads into the buckets named below. No staff command, no event, no other",
        "      # JetStream.",
        *_opening(WEB_USER),
        *_lines(*([subject] for subject in public_subjects())),
        *_lines(health),
        *uploads,
        "            ]",
        "          }",
        "          subscribe: {",
        "            allow: [",
        *_comment("Its own health check, like every service's."),
        *_lines([f"{WEB_USER}.health"]),
        *_comment("Replies to its requests."),
        *_lines([f"_INBOX_{WEB_USER}.>"]),
        "            ]",
        "          }",
        "          allow_responses: true",
        "        }",
        "      }",
    ]


HEADER = """\
# samskab NATS accounts and users: included by nats.conf (single node), cluster/n*.conf and
# the embedded stack's generated config, so every user is defined once.
#
# GENERATED by stack/nats_accounts.py from services/registry.py; do not edit by hand:
# change the generator or the registry and run `.venv/bin/python -m stack.nats_accounts`
# (tests/unit/test_registry.py fails while this file and the generator disagree).
#
# One account (SAMSKAB) holds every stream, because services consume each other's events.
# Inside it each service connects as its own user and may publish only its own subjects
# (docs/architecture.md). Per service <svc>:
#   publish    <svc>.>                   its events <svc>.v1.> and requests to itself
#              $JS.API ... <SVC>         its event stream <SVC>, its dead-letter stream
#              $JS.API ... DLQ_<SVC>     DLQ_<SVC> and its Object Store buckets OBJ_<bucket>
#              $JS.API ... <X>.<svc>     its durable consumer "<svc>" on any event stream X
#              $JS.ACK.<X>.<svc>.>       acks for that consumer
#   subscribe  <svc>.cmd.> <svc>.query.> <svc>.health   the requests it answers
#              *.v1.>  MAX_DELIVERIES advisories  _INBOX_<svc>.> (its own inbox only:
#              services/runtime connects with that prefix, so no user reads another's replies)
#   allow_responses: true                answers requests without publish rights on _INBOX.>
# So no service can publish another's events or commands, change another's stream, read a
# bucket that is not its own or named in the registry (certificates carry the ambassador's
# name), or use, peek at or delete another service's consumer. Anonymous clients are refused.
#
# This follows services/runtime (service.py, dead_letters.py): durable consumers are named
# after the service, foreign streams are not declared (JStream(..., declare=False)), dead
# letters are captured in DLQ_<SVC>.
#
# Passwords come from the environment (NATS config variables; an unset variable makes the
# server refuse to start). The server parses the value as a config token, so use passwords
# made of letters and digits (e.g. `openssl rand -hex 24`): a purely numeric value or
# "true" fails to load, and a "#" starts a comment.

accounts {
  SAMSKAB {
    jetstream: enabled
    users: [
"""

FOOTER = """\
    ]
  }
}
"""


def _unrestricted_user(user: str) -> list[str]:
    return [
        f"      # --- {user}: tests and benchmarks only, may do anything ---",
        f"      {{ user: {user}, password: ${password_variable(user)} }}",
    ]


def render(unrestricted: Iterable[str] = ()) -> str:
    """The text of ``accounts.conf``; with ``unrestricted``, users without any permission
    limits as well, for a test or a benchmark to set up and inspect what it measures (the
    shipped file and ``make up`` have none)."""
    blocks = [_service_user(entry) for entry in registry.SERVICES] + [_cli_user(), _web_user()]
    blocks += [_unrestricted_user(user) for user in unrestricted]
    body = "\n\n".join("\n".join(block) for block in blocks)
    return HEADER + body + "\n" + FOOTER


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stack.nats_accounts",
        description="Write deploy/nats/accounts.conf from the services registry.",
    )
    parser.add_argument("--check", action="store_true", help="only say whether it is current")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = ACCOUNTS_FILE.read_text(encoding="utf-8") == text
        print(f"{ACCOUNTS_FILE}: {'current' if current else 'out of date'}")
        return 0 if current else 1
    ACCOUNTS_FILE.write_text(text, encoding="utf-8")
    print(f"wrote {ACCOUNTS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
