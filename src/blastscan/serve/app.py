"""The FastAPI app over a bundle, its prediction endpoint, and running it with uvicorn."""

from __future__ import annotations

import asyncio
import base64
import functools
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, HTTPException, Query, UploadFile
from fastapi.responses import HTMLResponse

from blastscan.bundle import Bundle, as_bundle
from blastscan.errors import BlastscanError
from blastscan.serve.limits import (
    BODY_TIMEOUT_S,
    MAX_CONNECTIONS,
    MAX_FIELDS,
    MAX_FILES,
    MAX_UPLOAD_BYTES,
    BodyTimeout,
    UploadLimit,
    _too_large,
    check_type,
    header_deadline_protocol,
)
from blastscan.serve.page import render_page


def create_app(
    bundle: Bundle | str | Path,
    *,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    max_concurrent: int = 1,
    engine: str = "torch",
    body_timeout: float = BODY_TIMEOUT_S,
):
    """The FastAPI app for one bundle (loaded and verified once, at start)."""
    model = as_bundle(bundle)
    model.engine(engine)  # an engine the bundle lacks (model.int8.onnx) fails at start
    workers = ThreadPoolExecutor(max_concurrent, thread_name_prefix="blastscan-model")

    @asynccontextmanager
    async def lifespan(_app) -> AsyncIterator[None]:
        yield
        workers.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        lifespan=lifespan,
        title="blastscan",
        version=model.manifest["versions"].get("blastscan", "?"),
        description="ALL subtype classification of blood smear images. "
        "Research use only; not a diagnostic device.",
        # The multipart parser refuses more parts than this before spooling them (400).
        form_limits={"max_files": MAX_FILES, "max_fields": MAX_FIELDS},
    )
    app.add_middleware(UploadLimit, max_bytes=max_upload_bytes)
    app.add_middleware(BodyTimeout, seconds=body_timeout)  # outermost: covers every receive
    app.state.bundle = model

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return render_page(model, max_upload_bytes)

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness and what is loaded."""
        return {
            "status": "ok",
            "bundle": model.path.name,
            "classes": model.display_names,
            "input_size": model.image_size,
            "decides": model.default_head,
            "ood": model.ood is not None,
            "ood_check": "on" if model.ood is not None else "unchecked: no OOD detector",
            "engine": engine,
            "precision": "int8" if engine == "onnx-int8" else _precision(engine),
            "format_version": model.manifest["format_version"],
        }

    @app.post("/api/predict")
    async def predict(
        file: Annotated[
            UploadFile, File(description="One smear image (JPEG, PNG, BMP, TIFF, WebP).")
        ],
        explain: Annotated[
            bool, Query(description="Include the Grad-CAM overlay (PNG data URL).")
        ] = True,
    ) -> dict[str, Any]:
        """Class, probabilities per class, deciding head, OOD flag and (optionally) Grad-CAM."""
        check_type(file.content_type, file.filename)
        data = await file.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            raise _too_large(max_upload_bytes)
        call = functools.partial(analyse, model, data, file.filename or "upload", explain, engine)
        try:
            return await asyncio.get_running_loop().run_in_executor(workers, call)
        except BlastscanError as exc:
            raise HTTPException(415, str(exc)) from exc

    return app


def analyse(
    bundle: Bundle, data: bytes, filename: str, explain: bool, engine: str = "torch"
) -> dict[str, Any]:
    """Decode, predict and explain one upload (runs in a worker thread)."""
    from blastscan.data import open_rgb
    from blastscan.explain import display_image, grad_cam, overlay, png_bytes

    image = open_rgb(data)
    array = bundle.prepare(image)[None]
    prediction = bundle.predict(array, engine=engine)
    result = prediction.record(0, filename)
    result["filename"] = Path(filename).name
    result["probabilities"] = dict(
        zip(bundle.display_names, prediction.probabilities[0].tolist(), strict=True)
    )
    result["cnn_probabilities"] = dict(
        zip(bundle.display_names, prediction.cnn_probabilities[0].tolist(), strict=True)
    )
    result["ood_threshold"] = prediction.ood_threshold
    result.pop("path", None)
    if explain:
        k = int(prediction.predicted[0])
        cam = grad_cam(bundle.model, array, [k]).heatmaps[0]
        picture = overlay(display_image(image, 384), cam)
        result["gradcam_png"] = (
            "data:image/png;base64," + base64.b64encode(png_bytes(picture)).decode()
        )
        result["explained_class"] = bundle.display_names[k]
    return result


def _precision(engine: str) -> str:
    """The format the model runs in: ONNX Runtime's fp32 graph, or eager torch's choice."""
    if engine == "onnx":
        return "fp32"
    from blastscan.runtime.device import pick_device
    from blastscan.runtime.precision import current_precision

    return current_precision(pick_device(None))


def serve(
    bundle_path: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_concurrent: int = 1,
    engine: str = "torch",
) -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    check_can_listen(host, port)
    uvicorn.run(
        create_app(bundle_path, max_concurrent=max_concurrent, engine=engine),
        host=host,
        port=port,
        log_level="info",
        limit_concurrency=MAX_CONNECTIONS,
        http=header_deadline_protocol(),
    )


def check_can_listen(host: str, port: int) -> None:
    """Fail in one line before the bundle loads, not in uvicorn's log after it (a port in
    use, out of range, or an address this machine does not have)."""
    import socket

    if not 0 <= port <= 65535:
        raise BlastscanError(f"--port {port}: must be 0-65535")
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise BlastscanError(
            f"{host}:{port}: cannot listen there ({exc.strerror or exc}); "
            "choose another --port or --host"
        ) from exc
