"""What the downloads tell the user: HTML pages recognised and explained, and a failed request
or response put into one short line. They sit apart from fetch/http.py because they read
text, not transfer it: looks_like_html and html_refusal also serve fetch/weights.py (an HTML
page saved as a checkpoint) and fetch/gdrive.py (Drive's refusal pages), and failure_reason
digs the cause (timeout, refused connection, bad URL, TLS) out of the layers of exceptions
that requests and urllib3 wrap around it, so the message names it rather than the wrapper.
"""

from __future__ import annotations

import html
import re

import requests
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError, ProtocolError, ReadTimeoutError


def size_text(n: float, of: float | None = None) -> str:
    """ "5000 bytes", "12.3 MB", or with ``of``: "5000 of 300002 bytes", "12.3 of 1700.0 MB"."""
    big = max(n, of or 0) >= 1e6
    num = (lambda v: f"{v / 1e6:.1f}") if big else (lambda v: f"{int(v)}")
    return f"{num(n)}{f' of {num(of)}' if of is not None else ''} {'MB' if big else 'bytes'}"


def looks_like_html(head: bytes) -> bool:
    start = head.lstrip()[:64].lower()
    return start.startswith((b"<!doctype html", b"<html")) or (
        start.startswith(b"<") and b"<html" in head[:4096].lower()
    )


def page_title(page: str) -> str:
    m = re.search(r"<title[^>]*>(.*?)</title>", page, re.IGNORECASE | re.DOTALL)
    return " ".join(html.unescape(m.group(1)).split()) if m else ""


def html_refusal(page: str, who: str = "the server", what: str = "the file") -> str:
    title = page_title(page)
    return (
        f"{who} returned an HTML page instead of {what}{f' ({title!r})' if title else ''}: "
        "quota exceeded, no permission, a login page, or the file is gone"
    )


def status_text(resp: requests.Response) -> str:
    """ "HTTP 503 Service Unavailable", with how many retries urllib3 made before it."""
    retried = getattr(getattr(resp.raw, "retries", None), "history", ())
    tries = f" (after {len(retried)} retries)" if retried else ""
    return f"HTTP {resp.status_code} {resp.reason or ''}".rstrip() + tries


def retries_of(session: requests.Session, url: str) -> int:
    """How many times ``session`` retries a request to ``url``, for the "(N tries)" of failure_reason."""
    try:
        adapter = session.get_adapter(url)
    except requests.RequestException:  # no adapter for this scheme
        return 0
    total = getattr(getattr(adapter, "max_retries", None), "total", None)  # only HTTPAdapter retries
    return total if isinstance(total, int) else 0


def failure_reason(exc: BaseException, timeout: float, retries: int = 0) -> str:
    """A short reason for a requests/urllib3 failure."""
    inner: BaseException = exc
    while isinstance(inner, (requests.RequestException, MaxRetryError)):
        nxt = inner.reason if isinstance(inner, MaxRetryError) else (inner.args[0] if inner.args else None)
        if not isinstance(nxt, BaseException):
            break
        inner = nxt
    tries = f" ({retries + 1} tries)" if retries else ""
    if isinstance(inner, ConnectTimeoutError) and not isinstance(inner, NewConnectionError):
        return f"no connection within {timeout:g} s{tries}"
    if isinstance(inner, ReadTimeoutError):
        return f"no data for {timeout:g} s{tries}"
    if isinstance(inner, NewConnectionError):
        m = re.search(r"\[Errno [^\]]*\] ([^)\]]+)", str(inner))
        return f"cannot reach the server ({m.group(1).strip() if m else inner}){tries}"
    if isinstance(
        exc, (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL)
    ):
        return "not a valid http(s) URL"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS error ({inner})"
    if isinstance(inner, ProtocolError) and "IncompleteRead" in str(inner):
        return "connection closed early"
    return f"{type(inner).__name__}: {inner}"
