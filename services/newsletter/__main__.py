import asyncio

from services.newsletter.app import app

if __name__ == "__main__":
    asyncio.run(app.run())
