"""Web page and JSON API over a bundle: upload smear images, see class, probabilities, Grad-CAM.

`create_app(bundle)` builds a FastAPI app: GET / (upload page), POST /api/predict (multipart
field `file`), GET /health, and FastAPI's /openapi.json and /docs. Uploads are limited in size
(413), type (415), number of parts (400) and the time their body takes to arrive (408); the
model runs on its own small pool of `max_concurrent` threads (never on the event loop), so a
burst of uploads queues instead of piling onto the CPU, and the model's memory stays with the
same few threads (with the shared thread pool every thread that ever ran it kept its own glibc
malloc arena: a 7-minute soak grew to 1.76 GB).
"""

from blastscan.serve.app import analyse, check_can_listen, create_app, serve
from blastscan.serve.limits import (
    ALLOWED_TYPES,
    BODY_TIMEOUT_S,
    HEADER_TIMEOUT_S,
    MAX_CONNECTIONS,
    MAX_FIELDS,
    MAX_FILES,
    MAX_UPLOAD_BYTES,
    BodyTimeout,
    UploadLimit,
    check_type,
    header_deadline_protocol,
)
from blastscan.serve.page import PAGE, render_page

__all__ = [
    "ALLOWED_TYPES", "BODY_TIMEOUT_S", "HEADER_TIMEOUT_S", "MAX_CONNECTIONS", "MAX_FIELDS",
    "MAX_FILES", "MAX_UPLOAD_BYTES", "PAGE", "BodyTimeout", "UploadLimit", "analyse",
    "check_can_listen", "check_type", "create_app", "header_deadline_protocol", "render_page",
    "serve",
]  # fmt: skip
