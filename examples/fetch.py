"""Fetching a third-party page (the seeds' scraper): bounded in time and size, public addresses
only, errors sorted into the ones worth retrying and the ones that are not.

A URL of someone's choosing is fetched from inside the network, so every address it resolves to,
at the start and at every redirect, must be a public one (jobs/outbound.py says which are not)
unless FETCH_ALLOWED_NETWORKS lists it. Errors say that the fetch failed, not why a connection did:
they would otherwise map which internal ports are open.
"""
import html
import re
from urllib.parse import urljoin

import httpx
from django.conf import settings

from jobs import outbound

MAX_BYTES = 5 * 1024 * 1024
MAX_REDIRECTS = 5
TIMEOUT = httpx.Timeout(connect=5.0, read=15.0, write=5.0, pool=5.0)
TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class FetchTemporaryError(Exception):
    """A timeout, a dropped connection or a 5xx: worth trying again later."""


class FetchRefused(Exception):
    """A 4xx, or an address that may not be fetched: asking again will not change the answer."""


def url_check(url: str) -> None:
    """FetchRefused unless `url` is http(s) and every address its host resolves to may be fetched:
    a public one, or one FETCH_ALLOWED_NETWORKS lists (the engine's rules: jobs/outbound.py)."""
    try:
        outbound.url_check(url, settings.FETCH_ALLOWED_NETWORKS)
    except outbound.AddressRefused as exc:
        raise FetchRefused(f"The fetch of {exc}") from exc


def url_summarize(*, url: str) -> dict:
    """Fetch `url` and summarize it: final URL, HTTP status, size in bytes (up to 5 MiB) and title."""
    try:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client:
            for _ in range(MAX_REDIRECTS + 1):
                url_check(url)
                with client.stream("GET", url) as response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code >= 500:
                        raise FetchTemporaryError(f"{url} answered {response.status_code}")
                    if response.status_code >= 400:
                        raise FetchRefused(f"{url} answered {response.status_code}; not retrying a client error")
                    body = b""
                    for chunk in response.iter_bytes():
                        body += chunk
                        if len(body) >= MAX_BYTES:
                            break
                    break
            else:
                raise FetchRefused(f"The fetch of {url} failed: more than {MAX_REDIRECTS} redirects.")
    except httpx.TimeoutException as exc:
        raise FetchTemporaryError(f"The fetch of {url} failed: no answer in time.") from exc
    except httpx.TransportError as exc:  # refused or dropped connections
        raise FetchTemporaryError(f"The fetch of {url} failed: it could not be reached.") from exc
    title = TITLE.search(body)
    return {
        "url": str(response.url),
        "status": response.status_code,
        "bytes": len(body),
        "title": html.unescape(title.group(1).decode(response.encoding or "utf-8", "replace").strip()) if title else "",
    }
