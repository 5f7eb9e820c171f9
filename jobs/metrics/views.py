"""/metrics: the engine's figures for Prometheus."""
import hmac
import ipaddress

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ..throttling import client_address
from .collector import JobsCollector

metrics_registry = CollectorRegistry(auto_describe=False)
metrics_registry.register(JobsCollector())


def _may_scrape(request) -> bool:
    token = settings.METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
        return True
    try:
        # Behind a proxy on the same host every connection comes from loopback: the client's address decides.
        address = ipaddress.ip_address(client_address(request))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network) for network in settings.METRICS_ALLOWED_NETWORKS)


def metrics(request):
    """Prometheus' scrape: with METRICS_TOKEN as a bearer token, or from METRICS_ALLOWED_NETWORKS."""
    if not _may_scrape(request):
        return HttpResponse("Metrics need `Authorization: Bearer <METRICS_TOKEN>` or an address in "
                            "METRICS_ALLOWED_NETWORKS.\n", status=403, content_type="text/plain")
    try:
        body = generate_latest(metrics_registry)
    except DatabaseError as exc:
        return HttpResponse(f"The database is unavailable: {exc}\n", status=503, content_type="text/plain")
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
