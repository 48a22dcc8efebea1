import asyncio

from services.events.app import app

if __name__ == "__main__":
    asyncio.run(app.run())
