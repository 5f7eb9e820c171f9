"""Fetching a third-party page (the seeds' scraper): bounded in time and size, public addresses
only, errors sorted into the ones worth retrying and the ones that are not.

A URL of someone's choosing is fetched from inside the network, so every address it resolves to,
at the start and at every redirect, must be a public one: loopback, private, link-local (cloud
metadata at 169.254.169.254), carrier-grade NAT and other reserved ranges are refused unless
FETCH_ALLOWED_NETWORKS lists them. Errors say that the fetch failed, not why a connection did:
they would otherwise map which internal ports are open.
"""
import html
import ipaddress
import re
import socket
from urllib.parse import urljoin

import httpx
from django.conf import settings

MAX_BYTES = 5 * 1024 * 1024
MAX_REDIRECTS = 5
TIMEOUT = httpx.Timeout(connect=5.0, read=15.0, write=5.0, pool=5.0)
TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class FetchTemporaryError(Exception):
    """A timeout, a dropped connection or a 5xx: worth trying again later."""


class FetchRefused(Exception):
    """A 4xx, or an address that may not be fetched: asking again will not change the answer."""


def address_allowed(address: str) -> bool:
    """Whether an IP address may be fetched: a public one, or one FETCH_ALLOWED_NETWORKS lists."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone index is not part of it
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if any(ip in ipaddress.ip_network(network) for network in settings.FETCH_ALLOWED_NETWORKS):
        return True
    return ip.is_global and not ip.is_multicast


def url_check(url: str) -> None:
    """FetchRefused unless `url` is http(s) and every address its host resolves to may be fetched."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise FetchRefused(f"{url} is not an http or https address.")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parsed.host, port, type=socket.SOCK_STREAM)}
    except socket.gaierror as exc:
        raise FetchRefused(f"The fetch of {url} failed: its host name does not resolve.") from exc
    if not all(address_allowed(address) for address in addresses):
        raise FetchRefused(f"The fetch of {url} was refused: it is not a public address.")


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
