"""The public website: a gateway (FastAPI + jinja2) that owns no data and asks the services
over NATS through the typed client, as its own NATS user allowed only the public
endpoints."""
