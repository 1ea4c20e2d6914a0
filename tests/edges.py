"""One interface over the two SIP edges the integration tests run against: a real Kamailio and
sipfsm's own devserver.  Each says where it listens, who its users are, and who is registered."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from kamailio import Kamailio

from sipfsm.devserver import DevServer


class Edge(Protocol):
    name: str
    ws_url: str
    domain: str
    users: dict[str, str]

    def contacts(self, user: str) -> list[str]: ...


@dataclass
class KamailioEdge:
    server: Kamailio
    name: str = "kamailio"

    @property
    def ws_url(self) -> str:
        return self.server.ws_url

    @property
    def domain(self) -> str:
        return self.server.domain

    @property
    def users(self) -> dict[str, str]:
        return self.server.users

    def contacts(self, user: str) -> list[str]:
        """Contact URIs of ``user`` in Kamailio's location table (``kamcmd ul.dump``)."""
        dump = self.server.ul_dump()
        found: list[str] = []
        for block in re.split(r"\n\s*AoR:", dump)[1:]:
            aor = block.split("\n", 1)[0].strip()
            if aor.split("@", 1)[0] == user:
                found += re.findall(r"Address:\s*(\S+)", block)
        return found


@dataclass
class DevServerEdge:
    server: DevServer
    name: str = "devserver"

    @property
    def ws_url(self) -> str:
        return self.server.ws_url

    @property
    def domain(self) -> str:
        return self.server.domain

    @property
    def users(self) -> dict[str, str]:
        return dict(self.server.users)

    def contacts(self, user: str) -> list[str]:
        return [str(b.contact) for b in self.server.bindings().get(user, [])]
