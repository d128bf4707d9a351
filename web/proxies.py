"""Who is asking, and over what: the peer's address and scheme, or a trusted reverse proxy's word for them.

``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only when the peer itself is in
``DUTIES_TRUSTED_PROXIES`` (default: this machine, 127.0.0.1 and ::1). From anyone else they are ignored: a client
could otherwise spoof its address out of the login throttle, or claim HTTPS it does not have.
"""

from __future__ import annotations

from ipaddress import ip_address

from starlette.requests import Request

from store.settings import get_settings


def is_trusted(host: str | None) -> bool:
    try:
        address = ip_address((host or "").strip())
    except ValueError:  # "testclient", an empty peer, a forged word: never a proxy
        return False
    return any(address in network for network in get_settings().trusted_networks)


def client_address(request: Request) -> str:
    """The client's address: the peer, or, behind trusted proxies, the nearest hop that is not one of them."""
    peer = request.client.host if request.client else ""
    if not is_trusted(peer):
        return peer or "unknown"
    hops = [hop.strip() for hop in ",".join(request.headers.getlist("x-forwarded-for")).split(",") if hop.strip()]
    # Each proxy appends the address it saw, so only the right end is vouched for; the left end is the client's say.
    for hop in reversed(hops):
        if not is_trusted(hop):
            return _normalised(hop)
    return _normalised(hops[0]) if hops else peer


def is_https(request: Request) -> bool:
    """True over HTTPS: the request's own scheme, or the scheme a trusted proxy reports in X-Forwarded-Proto."""
    if request.url.scheme == "https":
        return True
    peer = request.client.host if request.client else ""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return forwarded == "https" and is_trusted(peer)


def _normalised(hop: str) -> str:
    try:
        return str(ip_address(hop))
    except ValueError:
        return hop[:100]  # not an address: keep it bounded, it only names a throttle row
