"""Requests to addresses someone else chose (a job's URL argument, an alert rule's webhook), made
from inside the network: only to public addresses unless an allow-list names the network.

Every address a host name resolves to is checked, when the URL is saved and again when it is
used (a name can be made to resolve elsewhere later), and redirects are not followed blindly: the
fetch job checks each hop, a webhook follows none. Loopback, private, link-local (cloud metadata
at 169.254.169.254), carrier-grade NAT and other reserved ranges are refused, and so are the IPv6
forms that carry an IPv4 address inside them (IPv4-mapped and -compatible, NAT64, 6to4, Teredo):
they are judged by the IPv4 address they lead to. A URL's user name and password are never
written to a log (`url_redacted`).
"""
import ipaddress
import socket
from collections.abc import Iterable

import httpx

# IPv6 prefixes whose addresses embed an IPv4 one in their last 32 bits: IPv4-compatible (::/96,
# deprecated but still routed by some stacks) and NAT64's well-known and local-use prefixes.
EMBEDDING_PREFIXES = [ipaddress.ip_network("::/96"), ipaddress.ip_network("64:ff9b::/96"),
                      ipaddress.ip_network("64:ff9b:1::/48")]


class AddressRefused(Exception):
    """A URL that is not http(s), does not resolve, or leads to an address that may not be reached."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to, if it is one of the forms that carry one."""
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]  # the client's; the server's is a relay
    if any(ip in prefix for prefix in EMBEDDING_PREFIXES):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_allowed(address: str, allowed_networks: Iterable[str] = ()) -> bool:
    """Whether an IP address may be reached: a public one, or one in `allowed_networks`."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone index is not part of it
    if isinstance(ip, ipaddress.IPv6Address):
        ip = _embedded_ipv4(ip) or ip
    if any(ip in ipaddress.ip_network(network) for network in allowed_networks):
        return True
    return ip.is_global and not ip.is_multicast


def url_check(url: str, allowed_networks: Iterable[str] = ()) -> None:
    """AddressRefused unless `url` is http(s) and every address its host resolves to may be reached."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise AddressRefused(f"{url_redacted(url)} is not a valid address.") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise AddressRefused(f"{url_redacted(url)} is not an http or https address.")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parsed.host, port, type=socket.SOCK_STREAM)}
    except (socket.gaierror, UnicodeError) as exc:
        raise AddressRefused(f"{url_redacted(url)}: its host name does not resolve.") from exc
    if not all(address_allowed(address, allowed_networks) for address in addresses):
        raise AddressRefused(f"{url_redacted(url)} was refused: it is not a public address.")


def url_redacted(url: str) -> str:
    """`url` without its user name and password, fit for a log or an error message."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "(an invalid URL)"
    return str(parsed.copy_with(username=None, password=None)) if parsed.userinfo else url


def post_json(url: str, payload: dict, *, allowed_networks: Iterable[str] = (), timeout: float = 5.0) -> None:
    """POST `payload` to `url` after checking where it leads; no redirect is followed. Raises
    AddressRefused, or httpx.HTTPError for a failed request or an answer that is not 2xx."""
    url_check(url, allowed_networks)
    response = httpx.post(url, json=payload, timeout=timeout, follow_redirects=False)
    if not response.is_success:
        raise httpx.HTTPStatusError(f"answered {response.status_code}", request=response.request, response=response)
