import asyncio

from services.ambassadors.app import app

if __name__ == "__main__":
    asyncio.run(app.run())
