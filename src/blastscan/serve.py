"""Web page and JSON API over a bundle: upload smear images, see class, probabilities, Grad-CAM.

`create_app(bundle)` builds a FastAPI app: GET / (upload page), POST /api/predict (multipart
field `file`), GET /health, and FastAPI's /openapi.json and /docs. Uploads are limited in size
(413), type (415), number of parts (400) and the time their body takes to arrive (408); the
model runs on its own small pool of `max_concurrent` threads (never on the event loop), so a
burst of uploads queues instead of piling onto the CPU, and the model's memory stays with the
same few threads (with the shared thread pool every thread that ever ran it kept its own glibc
malloc arena: a 7-minute soak grew to 1.76 GB).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import html
import json
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, HTTPException, Query, UploadFile
from fastapi.responses import HTMLResponse

from blastscan.bundle import Bundle, as_bundle
from blastscan.errors import BlastscanError

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MULTIPART_SLACK = 64 * 1024  # headers and boundaries around the file in a multipart body
BODY_TIMEOUT_S = 30.0  # a 10 MiB upload at 3 Mbit/s; slower or stalled clients get a 408
MAX_FILES = 1  # one image per request: the page sends each file in a request of its own
MAX_FIELDS = 8  # other form fields, which the API ignores
MAX_CONNECTIONS = 64  # uvicorn answers 503 beyond this, so idle connections cannot pile up
HEADER_TIMEOUT_S = 10.0  # a request's headers must be complete this long after it may start
ALLOWED_TYPES = {
    "image/jpeg",
    "image/png",
    "image/bmp",
    "image/x-ms-bmp",
    "image/tiff",
    "image/webp",
}


def _too_large(limit: int) -> HTTPException:
    return HTTPException(
        413, f"upload too large: the limit is {limit / 1024 / 1024:.1f} MiB per image"
    )


class UploadLimit:
    """ASGI middleware: refuse bodies over the limit from Content-Length, or while streaming.

    The check runs before the multipart parser spools anything to disk.
    """

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes + MULTIPART_SLACK
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _json_response(scope, receive, send, 413, _too_large(self.max_bytes).detail)
            return
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise _too_large(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)


class BodyTimeout:
    """ASGI middleware: the whole request body must arrive within `seconds`, or 408.

    uvicorn (h11) times out idle keep-alive connections but not a body that trickles in or
    stalls. Such a client never blocks the others (the wait is on the event loop), but without
    a deadline each one would hold a connection and a half-spooled upload for ever. The 408
    closes the connection, since the rest of its body will not be read.
    """

    def __init__(self, app, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        body_done = False

        async def timed_receive():
            nonlocal body_done
            if body_done:  # later receives wait for a disconnect: not the body's deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise HTTPException(
                    408,
                    f"request body not received within {self.seconds:g} s; "
                    "send the upload again from a faster connection",
                    headers={"Connection": "close"},
                ) from None
            body_done = message["type"] != "http.request" or not message.get("more_body")
            return message

        await self.app(scope, timed_receive, send)


async def _json_response(scope, receive, send, status: int, detail: str) -> None:
    from starlette.responses import JSONResponse

    await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)


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


def check_type(content_type: str | None, filename: str | None) -> None:
    """415 unless the part is a supported image type (or octet-stream with an image extension)."""
    from blastscan.data import IMAGE_EXTENSIONS

    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in ALLOWED_TYPES:
        return
    if (
        kind in ("", "application/octet-stream")
        and Path(filename or "").suffix.lower() in IMAGE_EXTENSIONS
    ):
        return
    raise HTTPException(
        415, f"unsupported upload type {kind or 'none'!r}; send JPEG, PNG, BMP, TIFF or WebP"
    )


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


def render_page(bundle: Bundle, max_upload_bytes: int) -> str:
    """The upload page: plain HTML, CSS and JavaScript, nothing fetched from elsewhere."""
    config = {"classes": bundle.display_names, "maxBytes": max_upload_bytes}
    return (
        PAGE.replace("__TITLE__", html.escape(bundle.manifest.get("name", "blastscan")))
        .replace("__CLASSES__", html.escape(", ".join(bundle.display_names)))
        .replace("__LIMIT__", f"{max_upload_bytes / 1024 / 1024:.0f} MiB")
        .replace("__CONFIG__", json.dumps(config))
        .replace("__UNCHECKED__", "" if bundle.ood is not None else UNCHECKED_BANNER)
    )


# Shown on the page of a bundle without an OOD detector (older versions, or --cnn-only).
UNCHECKED_BANNER = (
    '<p class="ood" id="unchecked">This bundle has no out-of-distribution detector: every image '
    "gets one of the classes above, however unlike a smear it is. Rebuild it with "
    "<code>blastscan bundle RUN --out DIR --data DATA</code>.</p>\n"
)


def header_deadline_protocol(seconds: float = HEADER_TIMEOUT_S):
    """uvicorn's h11 HTTP protocol, closing connections whose request headers come too slowly.

    Why by hand: uvicorn has no timeout on receiving a request's headers (its keep-alive timer
    restarts with every byte), and the app cannot help, as it only runs once the headers are
    complete. So a client trickling a header line a byte at a time (slowloris) held a connection
    for good, and 64 of them locked everyone out. The deadline starts when a connection opens
    and again after each response (the next request on a kept-alive connection); the headers
    arriving disarm it; the body has its own deadline (`BodyTimeout`).
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadlineProtocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_deadline()

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and not self.cycle.response_complete:
                self._disarm_header_deadline()  # a request's headers are in

        def on_response_complete(self) -> None:
            self._arm_header_deadline()  # before super(): it may start a pipelined request
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_deadline()
            super().connection_lost(exc)

        def _arm_header_deadline(self) -> None:
            self._disarm_header_deadline()
            self._header_timer = self.loop.call_later(seconds, self._headers_too_slow)

        def _disarm_header_deadline(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            waiting = self.cycle is None or self.cycle.response_complete
            if waiting and not self.transport.is_closing():
                self.transport.close()

    return HeaderDeadlineProtocol


def serve(
    bundle_path: str | Path, host: str = "127.0.0.1", port: int = 8000, max_concurrent: int = 1
) -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    check_can_listen(host, port)
    uvicorn.run(
        create_app(bundle_path, max_concurrent=max_concurrent),
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


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>blastscan: __TITLE__</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222;
        padding: 0 1rem; }
 h1 { font-size: 1.4rem; margin-bottom: .2rem; }
 .note { color: #8a1c1c; font-weight: 600; }
 form { border: 2px dashed #b9a; padding: 1rem; border-radius: .5rem; margin: 1rem 0;
        background: #fcf8fb; }
 button { font-size: 1rem; padding: .4rem 1.2rem; margin-left: .5rem; }
 .card { display: flex; gap: 1rem; border: 1px solid #ddd; border-radius: .5rem; padding: 1rem;
         margin: 1rem 0; }
 .card img { max-width: 320px; max-height: 320px; border-radius: .3rem; }
 .cls { font-size: 1.3rem; font-weight: 700; }
 .bar { background: #eee; height: .9rem; width: 14rem; display: inline-block;
        vertical-align: middle; }
 .bar span { background: #7a4d9c; height: 100%; display: block; }
 table { border-collapse: collapse; } td { padding: .1rem .5rem; }
 .ood { color: #b00; font-weight: 600; } .error { color: #b00; }
</style></head>
<body>
<h1>blastscan: __TITLE__</h1>
<p>Classes: __CLASSES__.
 <span class="note">Research use only; not a diagnostic device.</span></p>
__UNCHECKED__<form id="upload">
 <input type="file" id="files" name="file" accept="image/*" multiple>
 <button type="submit" id="go">Predict</button>
 <div><small>JPEG, PNG, BMP, TIFF or WebP; at most __LIMIT__ per image.</small></div>
</form>
<div id="status"></div>
<div id="results"></div>
<script>
const CONFIG = __CONFIG__;
const results = document.getElementById("results");
const status = document.getElementById("status");
function esc(s) {
  const d = document.createElement("div"); d.textContent = String(s); return d.innerHTML;
}
function pct(p) { return (100 * p).toFixed(1) + "%"; }
function failed(name, why) { return `<div class="card error">${esc(name)}: ${esc(why)}</div>`; }
function card(r) {
  const rows = Object.entries(r.probabilities).map(([name, p]) =>
    `<tr><td>${esc(name)}</td><td><span class="bar"><span style="width:${pct(p)}"></span>` +
    `</span></td><td>${pct(p)}</td></tr>`).join("");
  const ood = r.ood === true ? `<p class="ood">Out of distribution (${esc(r.ood_reason)}): this ` +
    `does not look like the training smears. Do not trust the class; nearest: ${esc(r.nearest)}.</p>`
    : r.ood === "unchecked" ? `<p class="ood">Not checked for being out of distribution: this ` +
    `bundle has no OOD detector, so an image unlike the training smears still gets a class.</p>` : "";
  const img = r.gradcam_png ? `<img alt="Grad-CAM overlay" src="${r.gradcam_png}">` : "";
  return `<div class="card result">${img}<div><div>${esc(r.filename)}</div>` +
    `<div class="cls">${esc(r.predicted)}</div><div>${pct(r.probability)} ` +
    `(${esc(r.head)} head)</div>${ood}<table>${rows}</table>` +
    `<small>Heat map: Grad-CAM for ${esc(r.explained_class || r.predicted)}.</small></div></div>`;
}
async function send(file) {
  if (file.size > CONFIG.maxBytes) return failed(file.name, "too large");
  const body = new FormData(); body.append("file", file);
  const response = await fetch("/api/predict", { method: "POST", body });
  const data = await response.json();
  return response.ok ? card(data) : failed(file.name, data.detail);
}
document.getElementById("upload").addEventListener("submit", async (event) => {
  event.preventDefault();
  const files = Array.from(document.getElementById("files").files);
  if (!files.length) { status.textContent = "Choose one or more images first."; return; }
  results.innerHTML = "";
  for (const [i, file] of files.entries()) {
    status.textContent = `Analysing ${i + 1} of ${files.length}...`;
    try { results.insertAdjacentHTML("beforeend", await send(file)); }
    catch (err) { results.insertAdjacentHTML("beforeend", failed(file.name, err)); }
  }
  status.textContent = `Done: ${files.length} image(s).`;
});
</script>
</body></html>
"""
