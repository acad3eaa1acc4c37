"""The web demo and REST API (FastAPI + uvicorn): ``emospec serve`` or :func:`create_app`.

Needs the ``[serve]`` extra (fastapi, uvicorn, python-multipart).
"""

from .app import create_app

__all__ = ["create_app"]
