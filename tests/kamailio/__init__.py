"""A real Kamailio SIP server for the integration tests (see server.py and kamailio.cfg)."""

from .server import (
    DEFAULT_USERS,
    DOMAIN,
    Kamailio,
    KamailioError,
    find_kamailio,
    find_kamailio_module,
    find_kamcmd,
)

__all__ = [
    "DEFAULT_USERS",
    "DOMAIN",
    "Kamailio",
    "KamailioError",
    "find_kamailio",
    "find_kamailio_module",
    "find_kamcmd",
]
