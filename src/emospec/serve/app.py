"""The web page and REST API: :func:`create_app` builds a FastAPI app around one Recognizer.

Endpoints (all JSON; errors are ``{"error": short reason, "detail": one line}``):

=======================  =====================================================
``GET  /``               the page (plain HTML/JS/CSS from ``static/``, no CDN)
``GET  /api/v1/health``  liveness and how many inference slots are busy
``GET  /api/v1/model``   the model card: labels, feature config, the file's meta
``POST /api/v1/predict`` label, scores, duration; ``?timeline=1`` per-window
                         scores, ``?features=1`` the 3D log-Mel image
``POST /api/v1/embed``   the 256-d FC6 embedding
``POST /api/v1/features`` the 3D log-Mel image alone
``GET  /docs``           OpenAPI docs (Swagger UI loads its JS from a CDN)
=======================  =====================================================

A silent clip (``"silent": true``: its loudest 50 ms below -60 dBFS) has no emotion: ``"label": null``, ``"scores": {}``,
``"predictions": []``.

POST bodies are a multipart upload in the field ``file`` or the raw audio bytes.
Uploads are read with a size limit checked while streaming (413), decoded in
memory, and analysed in a worker thread; an :class:`anyio.CapacityLimiter`
bounds how many analyses run at once (the rest wait their turn).
"""

from __future__ import annotations

import logging
import os
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import anyio
import anyio.to_thread
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ..config import to_dict
from ..errors import ConfigError, EmospecError
from ..predict import Recognizer, load
from ..versions import __version__
from . import analysis
from .analysis import Limits
from .uploads import ApiError, read_upload

__all__ = ["create_app", "STATIC_DIR", "PAGE_CSP"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"

PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
"""Content-Security-Policy of the page: everything from this server, nothing from the internet."""


class ErrorBody(BaseModel):
    error: str
    detail: str


_AUDIO_BODY = {
    "requestBody": {
        "required": True,
        "description": "The audio: a multipart upload in the field `file`, or the raw file bytes. Anything "
                       "libsndfile decodes (WAV, FLAC, OGG/Vorbis/Opus, MP3, AIFF...).",
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                               "properties": {"file": {"type": "string", "format": "binary"}}}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "audio/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
_ERRORS: Dict[int | str, Dict[str, Any]] = {
    413: {"model": ErrorBody, "description": "Upload larger than max_upload_mb, or audio longer than max_duration_s"},
    415: {"model": ErrorBody, "description": "Not audio (libsndfile does not recognise the bytes)"},
    422: {"model": ErrorBody, "description": "Empty body, no `file` part, undecodable samples or a bad parameter"},
}


def _json_safe(x: Any) -> Any:
    """Plain JSON values from a checkpoint's meta (tensors and other objects become strings)."""
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return str(x)


def model_card(rec: Recognizer, limits: Limits) -> Dict[str, Any]:
    """What the loaded model is: labels, feature and model config, parameter count, the file's meta, limits."""
    model, bundle = rec.model, rec.bundle
    if bundle is None:  # the ONNX backend has no torch model to describe
        raise ConfigError("serve needs the torch backend (a .pt model or run directory), not an ONNX model")
    return {
        "labels": list(rec.labels),
        "n_classes": len(rec.labels),
        "sample_rate_hz": rec.sample_rate_hz,
        "embedding_dim": int(model.config.embed_dim),
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "file": os.path.basename(bundle.path) if bundle.path else "",
        "feature_config": to_dict(rec.feature_config),
        "model_config": to_dict(model.config),
        "meta": _json_safe(bundle.meta),
        "device": str(rec.device),
        "emospec_version": __version__,
        "limits": limits.to_dict(),
    }


def _error(status: int, error: str, detail: str, headers: Optional[Dict[str, str]] = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.error, exc.detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        try:
            phrase = HTTPStatus(exc.status_code).phrase.lower()
        except ValueError:
            phrase = "error"
        return _error(exc.status_code, phrase, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _bad_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()]
        return _error(422, "invalid parameter", "; ".join(parts))

    @app.exception_handler(EmospecError)
    async def _emospec_error(request: Request, exc: EmospecError) -> JSONResponse:
        return _error(422, "cannot analyse audio", str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal error", f"{type(exc).__name__} (see the server log)")


def create_app(model: Recognizer | str | os.PathLike | None = None, *, max_upload_mb: float = 25.0,
               max_duration_s: float = 300.0, max_concurrency: Optional[int] = None,
               device: Optional[str] = None) -> FastAPI:
    """Build the app around one model, kept on ``app.state.recognizer``.

    Parameters
    ----------
    model
        A :class:`~emospec.predict.Recognizer`, a run directory or ``model.pt``;
        ``None`` loads the model bundled with the install (if any).
    max_upload_mb
        Largest accepted upload in MiB (2**20 bytes); larger bodies get 413
        as soon as they pass it.
    max_duration_s
        Longest accepted audio in seconds (413 past it).
    max_concurrency
        Analyses running at once (default: CPU count, at most 4); further
        requests wait for a free slot.
    device
        Torch device when ``model`` is a path (default: CUDA if available).

    Raises
    ------
    CheckpointError
        The model cannot be loaded (or none was given and none is bundled).
    ConfigError
        A limit is not positive, or the model is an ONNX one (serving needs the torch backend).
    """
    if not max_upload_mb > 0 or not max_duration_s > 0 or (max_concurrency is not None and max_concurrency < 1):
        raise ConfigError(f"serve limits must be positive: max_upload_mb={max_upload_mb}, "
                          f"max_duration_s={max_duration_s}, max_concurrency={max_concurrency}")
    rec = model if isinstance(model, Recognizer) else load(model, device=device)
    limits = Limits(max_upload_bytes=int(max_upload_mb * 2**20), max_duration_s=float(max_duration_s),
                    max_concurrency=int(max_concurrency or min(4, os.cpu_count() or 1)))
    app = FastAPI(title="emospec", version=__version__,
                  description="Speech emotion recognition with 3D log-Mel spectrograms and a modified AlexNet.")
    app.state.recognizer = rec
    app.state.limits = limits
    app.state.limiter = anyio.CapacityLimiter(limits.max_concurrency)
    app.state.started = time.time()
    card = model_card(rec, limits)
    _install_error_handlers(app)

    async def analyse(request: Request, work: Callable[[Any, str], Dict]) -> Dict:
        """Read the upload, then decode and run ``work(wave, name)`` in a worker thread under the limiter.

        The answer is ``work``'s dict plus ``"input"``: the upload's format, rate, channels and duration.
        """
        try:
            upload = await read_upload(request, limits.max_upload_bytes)
        except ClientDisconnect as e:
            raise ApiError(400, "client disconnected", "the upload ended early") from e

        def job() -> Dict:
            wave, head = analysis.decode(rec, upload, limits)
            return {**work(wave, upload.name), "input": head}

        return await anyio.to_thread.run_sync(job, limiter=app.state.limiter)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html",
                            headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"})

    @app.get("/api/v1/health", summary="Liveness, version and busy inference slots")
    async def health() -> Dict[str, Any]:
        lim = app.state.limiter
        return {"status": "ok", "version": __version__, "model": card["file"],
                "uptime_s": round(time.time() - app.state.started, 3),
                "busy": int(lim.borrowed_tokens), "capacity": int(lim.total_tokens)}

    @app.get("/api/v1/model", summary="The model card")
    async def model_info() -> Dict[str, Any]:
        return card

    @app.post("/api/v1/predict", summary="Classify a clip", openapi_extra=_AUDIO_BODY, responses=_ERRORS)
    async def predict(
        request: Request,
        timeline: bool = Query(False, description="also return per-window scores"),
        window_s: float = Query(3.0, gt=0, le=60, description="timeline window length (s)"),
        hop_s: float = Query(1.0, gt=0, le=60, description="timeline hop (s)"),
        features: bool = Query(False, description="also return the 3D log-Mel image (see /api/v1/features)"),
        max_frames: int = Query(400, ge=16, le=4000, description="width of the log-Mel image in columns"),
    ) -> Dict[str, Any]:
        """Label, per-class scores, duration and a silence flag (silent: label null, scores {});
        optional timeline and log-Mel image."""
        return await analyse(request, lambda wave, name: analysis.prediction(
            rec, wave, name, timeline=(window_s, hop_s) if timeline else None,
            features_frames=max_frames if features else None, limits=limits))

    @app.post("/api/v1/embed", summary="The 256-d FC6 embedding of a clip", openapi_extra=_AUDIO_BODY,
              responses=_ERRORS)
    async def embed(request: Request) -> Dict[str, Any]:
        return await analyse(request, lambda wave, name: analysis.embedding(rec, wave, name))

    @app.post("/api/v1/features", summary="The clip's 3D log-Mel image (static, delta, delta-delta)",
              openapi_extra=_AUDIO_BODY, responses=_ERRORS)
    async def features_image(
        request: Request,
        max_frames: int = Query(400, ge=16, le=4000, description="width of the image in columns"),
    ) -> Dict[str, Any]:
        """Three 8-bit images, base64, row-major (n_mels, frames), lowest mel band first; see the schema notes."""
        return await analyse(request, lambda wave, name: {
            "source": name, **analysis.spectrogram_image(rec, wave, max_frames=max_frames)})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
