"""The stream a service declares for its events: ``<SERVICE>`` with subjects
``<service>.v1.>``, file storage, and the replicas, age limit and duplicate window of the
settings. Written once: the service (at start) and whoever declares it on its behalf
(``stack.streams``) use the same."""

from __future__ import annotations

from nats.js.api import StorageType, StreamConfig

from services.runtime.settings import ServiceSettings


def stream_name(service: str) -> str:
    return service.upper()


def stream_config(producer: str, settings: ServiceSettings) -> StreamConfig:
    """The stream ``producer`` declares for its events (``events`` -> ``EVENTS``)."""
    return StreamConfig(
        name=stream_name(producer),
        subjects=[f"{producer}.v1.>"],
        storage=StorageType.FILE,
        num_replicas=settings.stream_replicas,
        max_age=settings.stream_max_age_days * 24 * 3600,
        duplicate_window=settings.stream_duplicate_window_hours * 3600,
    )
