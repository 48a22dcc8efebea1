"""``python -m web``: the website, served by uvicorn at the configured host and port."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import uvicorn
from prometheus_client import start_http_server

from services.runtime.logging import configure_logging, get_logger
from web.app import create_app
from web.settings import WebSettings


def serve(app: Callable[..., Any], host: str, port: int) -> None:
    """uvicorn with the website's server settings (bench/web.py serves its bare baseline
    through this too, so the two differ only in the application)."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        # Our own access log: uvicorn's would write the tokens in the paths.
        access_log=False,
        proxy_headers=True,
        server_header=False,
        log_config=None,
    )


def main() -> None:
    settings = WebSettings()
    configure_logging(settings.log_format, settings.log_level, service="web")
    get_logger("web").info(
        "website starting", public_url=settings.public_url, port=settings.listen_port
    )
    app = create_app(settings)
    if settings.web_metrics_port:
        registry = app.state.metrics.registry
        start_http_server(settings.web_metrics_port, settings.web_metrics_host, registry=registry)
        get_logger("web").info(
            "metrics served",
            url=f"http://{settings.web_metrics_host}:{settings.web_metrics_port}/metrics",
        )
    serve(app, settings.web_host, settings.listen_port)


if __name__ == "__main__":
    main()
