"""kbroker: a Kafka wire-protocol compatible broker in Python."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kbroker.embedded import EmbeddedBroker
    from kbroker.embedded_cluster import EmbeddedCluster

__version__ = "0.1.0"
__all__ = ["EmbeddedBroker", "EmbeddedCluster", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy, so the broker process (`python -m kbroker serve`) does not import the embedding API.
    if name == "EmbeddedBroker":
        from kbroker.embedded import EmbeddedBroker
        return EmbeddedBroker
    if name == "EmbeddedCluster":
        from kbroker.embedded_cluster import EmbeddedCluster
        return EmbeddedCluster
    raise AttributeError(f"module 'kbroker' has no attribute {name!r}")
