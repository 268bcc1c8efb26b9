"""Web app: page, JSON API, limits (413/415), bounded concurrency, and a real browser upload."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from bundle_helpers import DISPLAY, single_thread, tiny_bundle  # noqa: F401
from fastapi.testclient import TestClient
from PIL import Image

from blastscan import serve as S
from blastscan.bundle import load_bundle
from blastscan.data.synthetic import synthetic_smears
from blastscan.errors import BlastscanError

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return load_bundle(tiny_bundle(tmp_path_factory.getbasetemp(), size=64))


@pytest.fixture(scope="module")
def client(bundle):
    return TestClient(S.create_app(bundle, max_upload_bytes=200_000))


def png(size: int = 96, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(synthetic_smears(1, size, seed)[0]).save(buffer, format="PNG")
    return buffer.getvalue()


def test_page_has_an_upload_form(client):
    response = client.get("/")
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    assert 'type="file"' in response.text and "multiple" in response.text
    assert "Research use only" in response.text and "Early Pre-B" in response.text


def test_health_and_openapi(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["classes"] == DISPLAY and health["input_size"] == 64
    schema = client.get("/openapi.json").json()
    assert "/api/predict" in schema["paths"] and "/health" in schema["paths"]


def test_predict_returns_classes_probabilities_and_grad_cam(client):
    response = client.post("/api/predict", files={"file": ("smear.png", png(), "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["nearest"] in DISPLAY and body["filename"] == "smear.png"
    assert set(body["probabilities"]) == set(DISPLAY)
    assert sum(body["probabilities"].values()) == pytest.approx(1.0)
    assert body["head"] == "features+classifier" and isinstance(body["ood"], bool)
    assert body["gradcam_png"].startswith("data:image/png;base64,")
    overlay = Image.open(io.BytesIO(base64.b64decode(body["gradcam_png"].split(",", 1)[1])))
    assert overlay.size == (96, 96)
    quick = client.post(
        "/api/predict?explain=false", files={"file": ("s.png", png(), "image/png")}
    ).json()
    assert "gradcam_png" not in quick and quick["probabilities"] == body["probabilities"]


def test_octet_stream_with_an_image_name_is_accepted(client):
    response = client.post(
        "/api/predict?explain=false", files={"file": ("x.png", png(), "application/octet-stream")}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("name", "data", "kind", "status", "words"),
    [
        ("notes.txt", b"hello", "text/plain", 415, "unsupported upload type"),
        ("fake.png", b"\x89PNG not really", "image/png", 415, "not a readable image"),
        ("big.png", b"\0" * 200_001, "image/png", 413, "upload too large"),
        (
            "huge.png",
            b"\0" * 400_000,
            "image/png",
            413,
            "upload too large",
        ),  # refused on Content-Length
    ],
)
def test_limits_give_clear_json_errors(client, name, data, kind, status, words):
    response = client.post("/api/predict", files={"file": (name, data, kind)})
    assert response.status_code == status
    assert words in response.json()["detail"]


def test_missing_file_field_is_a_422(client):
    assert (
        client.post("/api/predict", files={"other": ("a.png", png(), "image/png")}).status_code
        == 422
    )


@pytest.mark.parametrize("limit", [1, 2])
def test_model_calls_are_bounded_and_off_the_event_loop(bundle, monkeypatch, limit):
    import httpx

    active, peak, loop_threads = 0, 0, set()
    lock = threading.Lock()

    def slow(*args, **kwargs):
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        loop_threads.add(threading.current_thread().name)
        time.sleep(0.15)
        with lock:
            active -= 1
        return {"ok": True}

    monkeypatch.setattr("blastscan.serve.app.analyse", slow)
    app = S.create_app(bundle, max_concurrent=limit)

    async def burst():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            calls = [
                http.post("/api/predict", files={"file": ("a.png", png(), "image/png")})
                for _ in range(4)
            ]
            return await asyncio.gather(*calls)

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 4
    assert peak == limit
    assert threading.main_thread().name not in loop_threads
    # the model keeps to its own `limit` threads (one malloc arena each, not one per request)
    assert len(loop_threads) <= limit
    assert all(name.startswith("blastscan-model") for name in loop_threads)


# ---------------------------------------------------------------- a real browser


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_server(bundle):
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(S.create_app(bundle), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.mark.slow
@pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)
def test_browser_uploads_an_image_and_sees_the_result(live_server, tmp_path):
    pytest.importorskip("selenium", reason="needs selenium (pip install selenium)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    image = tmp_path / "smear.png"
    image.write_bytes(png(160, seed=3))
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1100,900",
    ):
        options.add_argument(flag)
    os.environ.setdefault("SE_AVOID_STATS", "true")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(live_server)
        driver.find_element(By.ID, "files").send_keys(str(image))
        driver.find_element(By.ID, "go").click()
        card = WebDriverWait(driver, 60).until(
            EC.presence_of_element_located((By.CSS_SELECTOR, ".result"))
        )
        assert any(name in card.text for name in DISPLAY)
        assert (
            card.find_element(By.TAG_NAME, "img").get_attribute("src").startswith("data:image/png")
        )
        shot = Path(os.environ.get("BLASTSCAN_SCREENSHOT", tmp_path / "page.png"))
        shot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    picture = Image.open(shot)
    pixels = np.asarray(picture.convert("RGB"), dtype=np.float32)
    assert picture.format == "PNG" and picture.width >= 800 and shot.stat().st_size > 20_000
    assert pixels.std() > 10 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 100


# ---------------------------------------------------------------- many files, slow clients


@pytest.mark.parametrize("count", [2, 50])
def test_many_files_in_one_request_are_refused(client, count):
    files = [("file", (f"s{i}.png", png(32, seed=i), "image/png")) for i in range(count)]
    response = client.post("/api/predict?explain=false", files=files)
    assert response.status_code == 400
    assert "Too many files" in response.json()["detail"]


@pytest.fixture
def server_with_short_body_timeout(bundle):
    """uvicorn on a free loopback port; a request body must arrive within 3 s."""
    import uvicorn

    port = _free_port()
    app = S.create_app(bundle, body_timeout=3.0)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", limit_concurrency=64,
        http=S.header_deadline_protocol(2.0),
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(10)


def _upload_head(port: int) -> socket.socket:
    """Open a connection and send the headers and the start of a 100 kB multipart upload."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    part = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n\x89PNG"
    )
    head = (
        "POST /api/predict HTTP/1.1\r\nHost: test\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n"
    )
    sock.sendall(head.encode() + part)
    return sock


def _reply(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    sock.close()
    return b"".join(chunks)


def _trickle(sock: socket.socket, stop: threading.Event) -> None:
    """A client that keeps sending one byte every 0.1 s: alive, but never done (a body that
    never completes, or a header line that never ends)."""
    try:
        while not stop.wait(0.1):
            sock.sendall(b"x")
    except OSError:
        pass  # the server closed the connection: what should happen


def test_stalled_and_trickling_uploads_do_not_block_others_and_get_a_408(
    server_with_short_body_timeout,
):
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    port = server_with_short_body_timeout
    stalled = [_upload_head(port) for _ in range(4)]
    trickler, stop = _upload_head(port), threading.Event()
    threading.Thread(target=_trickle, args=(trickler, stop), daemon=True).start()
    # Read every reply as it comes: the trickler's next byte after the server has closed is
    # answered with a reset, which can discard a 408 not yet read.
    readers = ThreadPoolExecutor(5)
    replies = [readers.submit(_reply, sock) for sock in [*stalled, trickler]]
    start = time.monotonic()
    normal = httpx.post(
        f"http://127.0.0.1:{port}/api/predict?explain=false",
        files={"file": ("s.png", png(), "image/png")},
        timeout=15,
    )
    normal_seconds = time.monotonic() - start
    assert normal.status_code == 200 and normal_seconds < 3.0, normal_seconds  # before any 408
    for i, future in enumerate(replies):
        try:
            reply = future.result(timeout=15)
        except ConnectionResetError:
            assert i == len(stalled), "only the trickler's bytes can meet a closed connection"
            continue  # closed by the server, which is what this checks; the 408 raced the reset
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
        assert b"request body not received within 3 s" in reply
    stop.set()
    readers.shutdown()
    assert time.monotonic() - start < 10, "the 408s must come at the 3 s deadline"


def test_headers_that_never_finish_are_cut_off_and_others_are_served(
    server_with_short_body_timeout,
):
    """Slowloris: header lines trickled forever. The connection is closed after the 2 s header
    deadline; a complete request on another connection is answered meanwhile."""
    import httpx

    port = server_with_short_body_timeout
    stop = threading.Event()
    slow = []
    for _ in range(3):
        sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n")
        slow.append(sock)
    tricklers = [threading.Thread(target=_trickle, args=(s, stop)) for s in slow[1:]]
    for thread in tricklers:
        thread.start()
    started = time.time()
    assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
    assert time.time() - started < 2.0
    replies = [_reply(sock) for sock in slow]  # returns once the server closes
    stop.set()
    elapsed = time.time() - started
    assert replies == [b"", b"", b""] and 1.5 < elapsed < 10


def test_a_port_in_use_or_out_of_range_fails_in_one_line_before_loading():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(BlastscanError, match=f"127.0.0.1:{port}: cannot listen there"):
            S.check_can_listen("127.0.0.1", port)
    S.check_can_listen("127.0.0.1", port)  # free again
    with pytest.raises(BlastscanError, match="--port 99999: must be 0-65535"):
        S.check_can_listen("127.0.0.1", 99999)
