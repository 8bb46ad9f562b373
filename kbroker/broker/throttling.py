"""Charging a request to its client's byte-rate quota (kbroker/security/quotas.py).

The answer carries `throttle_time_ms` and goes out at once; the connection then reads nothing
more from that client until the time has passed (KIP-219), so a client that ignores the hint is
held back all the same. With no quota set anywhere this is one dict check per request.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.security.quotas import QuotaManager, user_of

if TYPE_CHECKING:
    from kbroker.broker.dispatch import RequestContext


def charge(ctx: RequestContext, quota: QuotaManager, size: int) -> int:
    """Count `size` bytes for this client; the throttle time in ms, the connection muted for it."""
    throttle = quota.record(user_of(ctx.connection.principal), ctx.header.client_id or "", size, ctx.broker.now_ms())
    if throttle:
        ctx.connection.throttle(throttle)
    return throttle


def refund(ctx: RequestContext, quota: QuotaManager, size: int) -> None:
    """Take back what `charge` counted (a throttled Fetch is answered without its data)."""
    quota.unrecord(user_of(ctx.connection.principal), ctx.header.client_id or "", size, ctx.broker.now_ms())
