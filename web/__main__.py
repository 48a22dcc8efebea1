"""``python -m web``: the website, served by uvicorn at the configured host and port."""

from __future__ import annotations

import uvicorn

from services.runtime.logging import configure_logging, get_logger
from web.app import create_app
from web.settings import WebSettings


def main() -> None:
    settings = WebSettings()
    configure_logging(settings.log_format, settings.log_level, service="web")
    get_logger("web").info(
        "website starting", public_url=settings.public_url, port=settings.listen_port
    )
    uvicorn.run(
        create_app(settings),
        host=settings.web_host,
        port=settings.listen_port,
        # Our own access log: uvicorn's would write the tokens in the paths.
        access_log=False,
        proxy_headers=True,
        server_header=False,
        log_config=None,
    )


if __name__ == "__main__":
    main()
