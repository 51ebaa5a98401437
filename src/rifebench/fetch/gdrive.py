"""The Google Drive source of the weights: a file id turned into a download through Drive's
"can't scan this large file for viruses" page. Drive answers a large file with that HTML page
instead of the bytes, and over the years the page has carried its confirmation as a form, a
link, a download_warning cookie or a bare confirm= token, so each is looked for in turn and the
confirmed URL is followed once (a second page is a refusal: quota, permission, file gone). HTTP
goes through fetch/http.py, whose session keeps the cookie from one request to the next; tests
point RIFEBENCH_GDRIVE_URL and RIFEBENCH_GDRIVE_USERCONTENT_URL at a local server.
"""

from __future__ import annotations

import html.parser
import os
import re
import urllib.parse
from collections.abc import Callable
from http.cookiejar import CookieJar
from pathlib import Path

from rifebench.fetch.http import FetchError, download, make_session
from rifebench.fetch.pages import html_refusal

GDRIVE_URL = "https://drive.google.com/uc"
GDRIVE_USERCONTENT_URL = "https://drive.usercontent.google.com/download"


class _PageParser(html.parser.HTMLParser):
    """Collects the forms (action, named inputs) and links of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append((a.get("action") or "", {}))
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1][1][a["name"]] = a.get("value") or ""
        elif tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])


def get_gdrive(file_id: str, dest: Path, sha256: str | None, log: Callable[[str], object]) -> None:
    """Download Drive file ``file_id`` to ``dest`` (checked against ``sha256`` when given),
    confirming the large-file warning page once; FetchError otherwise."""
    base = os.environ.get("RIFEBENCH_GDRIVE_URL") or GDRIVE_URL
    with make_session() as session:  # its cookie jar keeps Drive's download_warning cookie
        pages: list[str] = []

        def confirm(page: str, page_url: str) -> str:
            """Drive's "can't scan this large file" page: the URL that confirms it."""
            confirmed = None if pages else _confirm_url(page, page_url, session.cookies, file_id, base)
            pages.append(page_url)
            if confirmed is None:
                raise FetchError(html_refusal(page, "Google Drive", "the weights"))
            return confirmed

        first = f"{base}?{urllib.parse.urlencode({'export': 'download', 'id': file_id})}"
        download(
            first, dest, sha256=sha256, resume=False, what="the weights", on_html=confirm, session=session, log=log
        )


def _confirm_url(page: str, page_url: str, jar: CookieJar, file_id: str, base: str) -> str | None:
    """The URL that confirms Drive's "can't scan this large file" warning, or None."""
    parsed = _PageParser()
    parsed.feed(page)
    override = os.environ.get("RIFEBENCH_GDRIVE_USERCONTENT_URL")
    for action, fields in parsed.forms:
        if "confirm" in fields:
            where = override or (urllib.parse.urljoin(page_url, action) if action else GDRIVE_USERCONTENT_URL)
            return f"{where}?{urllib.parse.urlencode({'id': file_id, **fields})}"
    for href in parsed.hrefs:
        if "confirm=" in href:
            return urllib.parse.urljoin(page_url, href)
    token = next((c.value for c in jar if c.name.startswith("download_warning")), None)
    if token:
        return f"{base}?{urllib.parse.urlencode({'export': 'download', 'confirm': token, 'id': file_id})}"
    match = re.search(r"confirm=([0-9A-Za-z_-]+)", page)
    if match:
        query = {"id": file_id, "export": "download", "confirm": match.group(1)}
        return f"{override or GDRIVE_USERCONTENT_URL}?{urllib.parse.urlencode(query)}"
    return None
