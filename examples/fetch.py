"""Fetching a third-party page (the seeds' scraper): bounded in time and size, errors sorted into
the ones worth retrying and the ones that are not."""
import html
import re

import httpx

MAX_BYTES = 5 * 1024 * 1024
TIMEOUT = httpx.Timeout(connect=5.0, read=15.0, write=5.0, pool=5.0)
TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class FetchTemporaryError(Exception):
    """A timeout, a dropped connection or a 5xx: worth trying again later."""


class FetchRefused(Exception):
    """A 4xx: asking again will not change the answer."""


def url_summarize(*, url: str) -> dict:
    """Fetch `url` and summarize it: final URL, HTTP status, size in bytes (up to 5 MiB) and title."""
    try:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=True) as client, client.stream("GET", url) as response:
            if response.status_code >= 500:
                raise FetchTemporaryError(f"{url} answered {response.status_code}")
            if response.status_code >= 400:
                raise FetchRefused(f"{url} answered {response.status_code}; not retrying a client error")
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) >= MAX_BYTES:
                    break
    except httpx.TransportError as exc:  # timeouts, refused or dropped connections
        raise FetchTemporaryError(f"{url}: {type(exc).__name__}: {exc}") from exc
    title = TITLE.search(body)
    return {
        "url": str(response.url),
        "status": response.status_code,
        "bytes": len(body),
        "title": html.unescape(title.group(1).decode(response.encoding or "utf-8", "replace").strip()) if title else "",
    }
