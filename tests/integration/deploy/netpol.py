"""NetworkPolicy semantics (networking.k8s.io/v1), enough to ask of rendered manifests
"may this endpoint open a connection to that one on this port?".

A connection is allowed when the source's egress allows it and the destination's ingress
does. A pod that no policy of a direction selects is open in that direction. An `ipBlock` is
matched against pod addresses too (some network plugins do): the stricter reading for these
tests. Only the namespace the manifests are rendered into is governed by them; endpoints
outside it (other namespaces' pods, addresses outside the cluster) are unconstrained on their
side. Written from the Kubernetes API reference; no cluster runs here."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

Doc = dict[str, Any]
NAMESPACE = "whetstone"


@dataclass(frozen=True)
class Pod:
    labels: dict[str, str]
    namespace: str = NAMESPACE
    ip: str = "10.244.1.10"
    namespace_labels: dict[str, str] = field(default_factory=dict)

    def ns_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace, **self.namespace_labels}


@dataclass(frozen=True)
class Address:
    """An address that is no pod: a node, the Kubernetes API server, a host on the internet."""

    ip: str


Endpoint = Pod | Address


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    """Label-selector semantics (matchLabels and matchExpressions); `{}` selects everything."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _in_block(block: Doc, ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    if address not in ipaddress.ip_network(block["cidr"]):
        return False
    return not any(address in ipaddress.ip_network(e) for e in block.get("except", []))


def _peer_matches(peer: Doc, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        return _in_block(peer["ipBlock"], other.ip)
    if not isinstance(other, Pod):
        return False
    namespaces = peer.get("namespaceSelector")
    if namespaces is None:
        if other.namespace != NAMESPACE:
            return False
    elif not selects(namespaces, other.ns_labels()):
        return False
    return selects(peer.get("podSelector") or {}, other.labels)


def _port_matches(ports: list[Doc] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    for p in ports:
        number = p.get("port")
        assert number is None or isinstance(number, int), f"named port {number}: use numbers"
        if p.get("protocol", "TCP") != protocol:
            continue
        if number is None or number <= port <= p.get("endPort", number):
            return True
    return False


def _governed(docs: list[Doc], pod: Endpoint, direction: str) -> list[Doc] | None:
    """The policies of `direction` selecting `pod`; None when nothing here governs it."""
    if not isinstance(pod, Pod) or pod.namespace != NAMESPACE:
        return None
    policies = [
        d
        for d in docs
        if d["kind"] == "NetworkPolicy"
        and direction in d["spec"].get("policyTypes", ["Ingress"])
        and selects(d["spec"]["podSelector"], pod.labels)
    ]
    return policies or None


def _direction_allows(
    docs: list[Doc], pod: Endpoint, other: Endpoint, port: int, protocol: str, direction: str
) -> bool:
    policies = _governed(docs, pod, direction)
    if policies is None:
        return True
    rules_key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    for policy in policies:
        for rule in policy["spec"].get(rules_key) or []:
            peers = rule.get(peers_key)
            if (not peers or any(_peer_matches(p, other) for p in peers)) and _port_matches(
                rule.get("ports"), port, protocol
            ):
                return True
    return False


def allowed(
    docs: list[Doc], src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP"
) -> bool:
    """May `src` open a connection to `dst` on `port`, under the NetworkPolicies in `docs`?"""
    return _direction_allows(docs, src, dst, port, protocol, "Egress") and _direction_allows(
        docs, dst, src, port, protocol, "Ingress"
    )
