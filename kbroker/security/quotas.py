"""Client quotas: byte rates per (user, client-id), as Kafka's ClientQuotaManager enforces them.

Quotas are set on entities: a user, a client id, or both, each either named or the default
(`None`). For a request from user U with client id C, the first entity in Kafka's order that sets
the quota decides: (U, C), (U, default client), (U), (default user, C), (default user, default
client), (default user), (C), (default client). Clients matching one entity share one rate: a
quota set on user U alone caps all of U's client ids together, while a default applies to each
user (or client id) on its own.

Rates are measured as Kafka's Rate does: `quota.window.num` samples of
`quota.window.size.seconds`, the rate being the samples' total over their span (at least all but
one whole window, so a client's first burst is measured over ~10 s, not over its first
milliseconds). A request that takes the rate over the quota is answered with
`throttle_time_ms = (rate - quota) / quota * span`, and its connection is not read for that long
(KIP-219). The clock is passed in.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

USER, CLIENT_ID = "user", "client-id"
PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE = "producer_byte_rate", "consumer_byte_rate"
REQUEST_PERCENTAGE = "request_percentage"  # of one thread's time per quota window, 100 = one whole thread
QUOTA_KEYS = (PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, REQUEST_PERCENTAGE)


DEFAULT = None  # a component's name when it is the default entity (`<default>` in Kafka's tools)


@dataclass(frozen=True, slots=True)
class QuotaEntity:
    """Which components are set: `has_user` / `has_client`; a set component's name, or DEFAULT."""
    has_user: bool
    user: str | None
    has_client: bool
    client_id: str | None

    @classmethod
    def of(cls, components: Iterable[tuple[str, str | None]]) -> QuotaEntity:
        """From (entity type, name or None) pairs, as the wire carries them; ValueError if invalid."""
        found: dict[str, str | None] = {}
        for kind, name in components:
            if kind not in (USER, CLIENT_ID):
                raise ValueError(f"unknown quota entity type {kind!r} (user, client-id)")
            if kind in found:
                raise ValueError(f"entity type {kind} given twice")
            if name == "":
                raise ValueError(f"empty {kind} name (a null name is the default)")
            found[kind] = name
        if not found:
            raise ValueError("an entity needs a user, a client id or both")
        return cls(USER in found, found.get(USER), CLIENT_ID in found, found.get(CLIENT_ID))

    def components(self) -> list[tuple[str, str | None]]:
        parts = [(USER, self.user)] if self.has_user else []
        return parts + ([(CLIENT_ID, self.client_id)] if self.has_client else [])


def _candidates(user: str, client_id: str) -> list[QuotaEntity]:
    """Kafka's precedence, most specific first."""
    return [QuotaEntity(True, user, True, client_id), QuotaEntity(True, user, True, DEFAULT),
            QuotaEntity(True, user, False, None), QuotaEntity(True, DEFAULT, True, client_id),
            QuotaEntity(True, DEFAULT, True, DEFAULT), QuotaEntity(True, DEFAULT, False, None),
            QuotaEntity(False, None, True, client_id), QuotaEntity(False, None, True, DEFAULT)]


class _SampledRate:
    def __init__(self, window_ms: int, samples: int, now_ms: float) -> None:
        self._window_ms = window_ms
        self._samples = samples
        self._windows: list[list[float]] = [[now_ms, 0.0]]  # [start, total], oldest first

    def record(self, value: float, now_ms: float) -> None:
        current = self._windows[-1]
        if now_ms >= current[0] + self._window_ms:
            current = [now_ms, 0.0]
            self._windows.append(current)
            del self._windows[:-self._samples]
        current[1] += value

    def measure(self, now_ms: float) -> tuple[float, float]:
        """(bytes per second, the span in ms it was measured over)."""
        live = [w for w in self._windows if w[0] > now_ms - self._samples * self._window_ms]
        if not live:
            return 0.0, float((self._samples - 1) * self._window_ms)
        span = max(now_ms - live[0][0], (self._samples - 1) * self._window_ms)
        return sum(w[1] for w in live) / (span / 1000), span


class QuotaManager:
    """One quota kind (producer_byte_rate or consumer_byte_rate) across all clients."""

    def __init__(self, key: str, settings: dict[QuotaEntity, dict[str, float]], *, window_ms: int = 1000,
                 samples: int = 11) -> None:
        self._key = key
        self._settings = settings  # shared with ClientQuotas: changes apply at once
        self._window_ms = window_ms
        self._samples = samples
        self._rates: dict[tuple[str, str], _SampledRate] = {}

    @property
    def enforced(self) -> bool:
        """Whether any quota is set at all (else requests need not be measured)."""
        return bool(self._settings)

    def record(self, user: str, client_id: str, value: float, now_ms: float) -> int:
        """Count `value` bytes for this client; the throttle time in ms (0 within the quota)."""
        if not self._settings:
            return 0
        for entity in _candidates(user, client_id):
            bound = self._settings.get(entity, {}).get(self._key)
            if bound is not None:
                break
        else:
            return 0
        shared = (user if entity.has_user else "", client_id if entity.has_client else "")
        rate = self._rates.get(shared)
        if rate is None:
            rate = self._rates[shared] = _SampledRate(self._window_ms, self._samples, now_ms)
        rate.record(value, now_ms)
        observed, span = rate.measure(now_ms)
        if bound <= 0:
            return self._samples * self._window_ms
        if observed <= bound:
            return 0
        return min(int((observed - bound) / bound * span), self._samples * self._window_ms)

    def unrecord(self, user: str, client_id: str, value: float, now_ms: float) -> None:
        """Take back a recorded value (a throttled Fetch is answered without its data, as in Kafka)."""
        for entity in _candidates(user, client_id):
            if self._key in self._settings.get(entity, {}):
                shared = (user if entity.has_user else "", client_id if entity.has_client else "")
                rate = self._rates.get(shared)
                if rate is not None:
                    rate.record(-value, now_ms)
                return


def user_of(principal: str) -> str:
    """`User:alice` -> `alice`: quotas name users without the principal type."""
    return principal.split(":", 1)[1] if ":" in principal else principal
