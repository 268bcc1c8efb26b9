"""The HTML rendering is self-contained: every figure embedded, nothing fetched."""

import re


def test_html_is_self_contained(written):
    html = written[4]
    sources = re.findall(r'src="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/") for s in sources)
    assert not re.search(r"<link|<script|href=\"http|url\(", html)
    assert html.count("<img") == len(sources)
