"""How the edge opens its MQTT connection: TLS with its client certificate, TCP_NODELAY, MQTT 5."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Final

__all__ = ["NODELAY", "client_tls_context"]

# paho (under aiomqtt) leaves Nagle's algorithm on: a request/response round trip then takes
# ~88 ms instead of ~0.6 ms on loopback (STYLE.md, measured).
NODELAY: Final = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)


def client_tls_context(*, ca_file: Path, cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A TLS (>= 1.2) client context trusting only central's CA, presenting our certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))
    return context
