"""The upload page: plain HTML, CSS and JavaScript, nothing fetched from elsewhere."""

from __future__ import annotations

import html
import json

from blastscan.bundle import Bundle


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
