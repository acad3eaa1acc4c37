"""The web demo and REST API (FastAPI + uvicorn): ``emospec serve`` or :func:`create_app`.

Modules: :mod:`.app` (routes, limits, errors), :mod:`.uploads` (reading a
request body within a size limit), :mod:`.analysis` (decode, predict, embed,
the log-Mel image; runs in worker threads), :mod:`.process` (run ``emospec
serve`` as a child process on loopback, for tests and benchmarks) and
``static/`` (the page). Needs the ``[serve]`` extra (fastapi, uvicorn,
python-multipart).
"""

from .app import create_app

__all__ = ["create_app"]
