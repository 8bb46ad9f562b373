"""Waiting on a condition of the cluster, for the tests driving the store's callbacks."""
from tests.waiting import POLL_S, wait_until_async as wait_until

__all__ = ["POLL_S", "wait_until"]
