"""Which network addresses a server-side request may reach (webhooks, Slack, health probes and
their /metrics). Pure: the rule, not the name lookup nor the request.

| range                                                  | kind        | team server | workspace |
|--------------------------------------------------------|-------------|-------------|-----------|
| 127.0.0.0/8, ::1                                       | loopback    | refused     | allowed   |
| 10/8, 172.16/12, 192.168/16, 100.64/10 (CGNAT),        | private     | refused     | allowed   |
| fc00::/7 (unique-local), fec0::/10 (site-local)        |             |             |           |
| 169.254/16 (cloud metadata 169.254.169.254), fe80::/10 | link-local  | refused     | refused   |
| 224/4, ff00::/8                                        | multicast   | refused     | refused   |
| 0.0.0.0/8, ::                                          | unspecified | refused     | refused   |
| any other address not routed on the internet          | reserved    | refused     | refused   |
| (240/4, 255.255.255.255, documentation, benchmarking)  |             |             |           |
| everything else                                        | public      | allowed     | allowed   |

"workspace" is a workspace opened on this machine (`loopml monitor run`, the demo): its requests
are made by its own user, who may reach their own model server on loopback or their network.
A range an admin allows (`loopml server --allow-target 10.1.0.0/16`) is allowed whatever its
kind. An IPv6 address that carries an IPv4 one is judged by that IPv4 address: IPv4-mapped
(`::ffff:127.0.0.1`) by it alone, 6to4 (2002::/16) and NAT64 (64:ff9b::/96) by both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

from loopml.errors import InvalidInput

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

_RANGES: tuple[tuple[str, IPNetwork], ...] = tuple(
    (kind, ip_network(cidr))
    for kind, cidr in (
        ("loopback", "127.0.0.0/8"),
        ("loopback", "::1/128"),
        ("unspecified", "0.0.0.0/8"),
        ("unspecified", "::/128"),
        ("reserved", "::/96"),  # IPv4-compatible IPv6, deprecated
        ("private", "10.0.0.0/8"),
        ("private", "172.16.0.0/12"),
        ("private", "192.168.0.0/16"),
        ("private", "100.64.0.0/10"),
        ("private", "fc00::/7"),
        ("private", "fec0::/10"),
        ("link-local", "169.254.0.0/16"),
        ("link-local", "fe80::/10"),
        ("multicast", "224.0.0.0/4"),
        ("multicast", "ff00::/8"),
    )
)
LOCAL_KINDS = frozenset({"loopback", "private"})
"""What a workspace on the user's own machine may reach besides the internet."""
_NAT64 = IPv6Network("64:ff9b::/96")


def kind_of(address: IPAddress) -> str:
    """`loopback`, `private`, `link-local`, `multicast`, `unspecified`, `reserved` or
    `public`, by the table above (the address itself, not what it may carry)."""
    for kind, network in _RANGES:
        if address.version == network.version and address in network:
            return kind
    return "public" if address.is_global else "reserved"


def judged_as(address: IPAddress) -> tuple[IPAddress, ...]:
    """The addresses a target is judged by: itself, and the IPv4 address it carries."""
    if isinstance(address, IPv4Address):
        return (address,)
    if address.ipv4_mapped is not None:
        return (address.ipv4_mapped,)
    carried = address.sixtofour
    if address in _NAT64:
        carried = IPv4Address(int(address) & 0xFFFFFFFF)
    return (address,) if carried is None else (address, carried)


@dataclass(frozen=True)
class TargetPolicy:
    """Where requests made by loopml on its own (not by a user's browser) may go."""

    allowed: tuple[IPNetwork, ...] = ()
    """Ranges allowed whatever their kind (an admin's `--allow-target`)."""
    local: bool = False
    """Whether loopback and private addresses are allowed: True for a workspace on the user's
    own machine, False on a team server."""

    def refusal(self, address: IPAddress) -> str | None:
        """None when a request may go to `address`; else the kind of range that refuses it."""
        judged = judged_as(address)
        if any(a.version == n.version and a in n for a in judged for n in self.allowed):
            return None
        for candidate in judged:
            kind = kind_of(candidate)
            if kind != "public" and not (self.local and kind in LOCAL_KINDS):
                return kind
        return None


def parse_networks(texts: Iterable[str]) -> tuple[IPNetwork, ...]:
    """The address ranges `texts` name (`10.0.0.0/8`, `127.0.0.1`, `fd00::/8`); InvalidInput
    naming the first that is not one."""
    networks = []
    for text in texts:
        try:
            networks.append(ip_network(text.strip(), strict=False))
        except ValueError:
            raise InvalidInput(
                f"{text!r} is not an address range.",
                "Give a CIDR such as 10.0.0.0/8, 127.0.0.1/32 or fd00::/8 to --allow-target.",
            ) from None
    return tuple(networks)
