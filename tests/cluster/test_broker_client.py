"""The inter-broker client against a real broker subprocess: it reaches the listener named by
inter.broker.listener.name in the other broker's registration, over TLS (with its keystore as the
client certificate) and SASL (PLAIN, SCRAM-SHA-512), and says why when it is refused."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from kbroker.clock import MonotonicClock, monotonic_ms
from kbroker.cluster.broker_client import BrokerConnection, InterBrokerLink, InterBrokerLoginError
from kbroker.cluster.image import BrokerRegistration, ClusterImage, Endpoint
from kbroker.cluster.marker_channel import MarkerChannel
from kbroker.config import build_config
from kbroker.errors import ErrorCode
from kbroker.wire.messages.metadata import METADATA, MetadataRequest
from tests.broker_process import BrokerProcess, free_port
from tests.certificates import Certificates, make_certificates

PROTOCOLS = {"PLAINTEXT": "PLAINTEXT", "SASL_SSL": "SASL_SSL", "MTLS": "SSL", "SASL_PLAINTEXT": "SASL_PLAINTEXT"}
PROTOCOL_MAP = ",".join(f"{name}:{protocol}" for name, protocol in PROTOCOLS.items())
USERS_JAAS = 'org.apache.kafka.common.security.plain.PlainLoginModule required user_broker="b-secret";'
USERS = {f"listener.name.{name}.plain.sasl.jaas.config": USERS_JAAS for name in ("sasl_ssl", "sasl_plaintext")}
REAUTH_MS = 1000


@dataclass
class Peer:
    process: BrokerProcess
    ports: dict[str, int]
    certs: Certificates

    def registration(self, listeners: tuple[str, ...] = tuple(PROTOCOLS),
                     host: str = "127.0.0.1") -> BrokerRegistration:
        return BrokerRegistration(7, host, self.ports["PLAINTEXT"], endpoints=tuple(
            Endpoint(name, host, self.ports[name], PROTOCOLS[name]) for name in listeners))


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    """The other broker: SCRAM user `broker` (in its data dir), PLAIN user `broker` (JAAS), mTLS."""
    base = tmp_path_factory.mktemp("peer")
    certs = make_certificates(base / "certs")
    added = subprocess.run([sys.executable, "-m", "kbroker", "scram-user", "--data-dir", str(base / "data"),
                            "--user", "broker", "--password", "b-secret"], capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    ports = {name: free_port() for name in PROTOCOLS}
    process = BrokerProcess(base / "data", {
        # MTLS on every address: reached as 127.0.0.2 too, a name its certificate does not carry.
        "listeners": ",".join(f"{name}://{'0.0.0.0' if name == 'MTLS' else '127.0.0.1'}:{port}"
                              for name, port in ports.items()),
        "listener.security.protocol.map": PROTOCOL_MAP,
        "ssl.keystore.location": str(certs.server), "ssl.truststore.location": str(certs.ca),
        "listener.name.mtls.ssl.client.auth": "required",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512", **USERS,
        "connections.max.reauth.ms": str(REAUTH_MS)}, port=ports["PLAINTEXT"]).start()
    yield Peer(process, ports, certs)
    process.stop()


def link(certs: Certificates, listener: str, mechanism: str = "PLAIN", password: str = "b-secret",
         monotonic: MonotonicClock = monotonic_ms, **settings: str) -> InterBrokerLink:
    """This broker's side, from its own configuration (the listeners it would serve itself)."""
    config = build_config({
        "zookeeper.connect": "zk:2181", "listeners": ",".join(f"{name}://127.0.0.1:0" for name in PROTOCOLS),
        "listener.security.protocol.map": PROTOCOL_MAP, "inter.broker.listener.name": listener,
        "ssl.keystore.location": str(certs.server), "ssl.truststore.location": str(certs.ca),
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512", **USERS,
        "sasl.mechanism.inter.broker.protocol": mechanism,
        f"listener.name.{listener.lower()}.{mechanism.lower()}.sasl.jaas.config":
            f'x.LoginModule required username="broker" password="{password}";', **settings})
    return InterBrokerLink(config.inter_broker_security, monotonic=monotonic)


async def metadata(connection: BrokerConnection) -> list[int]:
    answer = await connection.request(METADATA, 12, MetadataRequest(topics=[], allow_auto_topic_creation=False),
                                      timeout_s=10)
    return [broker.node_id for broker in answer.brokers]


@pytest.mark.parametrize("listener, mechanism", [("SASL_SSL", "PLAIN"), ("SASL_SSL", "SCRAM-SHA-512"),
                                                 ("SASL_PLAINTEXT", "SCRAM-SHA-512"), ("MTLS", "PLAIN"),
                                                 ("PLAINTEXT", "PLAIN")])
async def test_logs_in_on_the_inter_broker_listener(peer, listener, mechanism):
    connection = link(peer.certs, listener, mechanism).connection(peer.registration(), "test")
    try:
        assert await metadata(connection) == [1]  # answered: past the login, on the listener's own port
    finally:
        connection.close()


@pytest.mark.parametrize("listener, settings, message", [
    ("SASL_SSL", {"password": "wrong"}, "PLAIN login refused: SASL_AUTHENTICATION_FAILED: .*Invalid username"),
    ("SASL_PLAINTEXT", {"mechanism": "SCRAM-SHA-512", "password": "wrong"},
     "SCRAM-SHA-512 login refused: SASL_AUTHENTICATION_FAILED: .*Invalid user credentials"),
    ("SASL_SSL", {"mechanism": "SCRAM-SHA-256"},
     "SaslHandshake for SCRAM-SHA-256: UNSUPPORTED_SASL_MECHANISM \\(it enables PLAIN, SCRAM-SHA-512\\)"),
    # A truststore without the CA that signed the other broker's certificate.
    ("MTLS", {"listener.name.mtls.ssl.truststore.location": "CLIENT_CERT"}, "TLS handshake failed: .*CERTIFICATE"),
])
async def test_a_refusal_says_why(peer, listener, settings, message):
    settings = {key: str(peer.certs.client_cert) if value == "CLIENT_CERT" else value
                for key, value in settings.items()}
    connection = link(peer.certs, listener, **settings).connection(peer.registration(), "test")
    with pytest.raises(InterBrokerLoginError, match=f"broker 7 at {listener}://127.0.0.1:\\d+: {message}"):
        await metadata(connection)


async def test_the_other_brokers_certificate_must_name_its_registered_host(peer):
    """ssl.endpoint.identification.algorithm: Kafka's default `https` checks the name; empty does not."""
    elsewhere = peer.registration(("MTLS",), host="127.0.0.2")  # the certificate names 127.0.0.1 and localhost
    with pytest.raises(InterBrokerLoginError, match="TLS handshake failed: .*mismatch"):
        await metadata(link(peer.certs, "MTLS").connection(elsewhere, "test"))
    connection = link(peer.certs, "MTLS", **{"listener.name.mtls.ssl.endpoint.identification.algorithm": ""}
                      ).connection(elsewhere, "test")
    try:
        assert await metadata(connection) == [1]
    finally:
        connection.close()


async def test_a_broker_without_the_listener_cannot_be_reached(peer):
    connection = link(peer.certs, "MTLS").connection(peer.registration(("PLAINTEXT", "SASL_SSL")), "test")
    with pytest.raises(OSError, match="broker 7 has no MTLS listener"):
        await metadata(connection)


async def test_a_session_with_a_lifetime_is_renewed_before_it_ends(peer):
    """The peer closes a connection whose SASL session expired (KIP-368) at its next request; the
    client logs in afresh on a new connection before that, so no request fails."""
    connection = link(peer.certs, "SASL_PLAINTEXT", "SCRAM-SHA-512").connection(peer.registration(), "test")
    try:
        first_session_ends = None
        deadline = time.monotonic() + REAUTH_MS / 1000 * 2.5
        while time.monotonic() < deadline:
            assert await metadata(connection) == [1]
            first_session_ends = first_session_ends or connection._session_ends
            if connection._session_ends != first_session_ends:
                break  # a second login happened
            await asyncio.sleep(0.05)
        assert first_session_ends is not None and connection._session_ends != first_session_ends
    finally:
        connection.close()


async def test_the_session_is_renewed_by_the_links_monotonic_clock(peer):
    """The renewal deadline is on the clock the link is given: the same login until it passes, a
    new one at the first request after (all within the peer's real 1 s, so it never closes ours)."""
    now = [10**12]
    connection = link(peer.certs, "SASL_PLAINTEXT", "SCRAM-SHA-512", monotonic=lambda: now[0]).connection(
        peer.registration(), "test")
    try:
        assert await metadata(connection) == [1]
        ends = connection._session_ends
        assert ends is not None and now[0] < ends <= now[0] + REAUTH_MS
        now[0] = ends - 1
        assert await metadata(connection) == [1] and connection._session_ends == ends  # the same login
        now[0] = ends
        assert await metadata(connection) == [1] and connection._session_ends > ends  # logged in afresh
    finally:
        connection.close()


async def test_transaction_markers_refused_at_login_are_retried_and_said_once(peer, caplog):
    registration = peer.registration()
    channel = MarkerChannel(1, lambda: ClusterImage(brokers={7: registration}),
                            link(peer.certs, "SASL_SSL", password="wrong"))
    try:
        for _ in range(2):
            answer = await channel.send(7, 1000, 0, 0, True, [("t", 0)])
            assert answer == {("t", 0): ErrorCode.NOT_LEADER_OR_FOLLOWER}  # the coordinator retries
    finally:
        channel.close()
    refusals = [r for r in caplog.records if "cannot send transaction markers to broker 7" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].levelname == "ERROR"
    assert "SASL_AUTHENTICATION_FAILED" in refusals[0].getMessage()


async def test_a_client_certificate_the_other_broker_does_not_trust_is_a_refusal(peer, tmp_path):
    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(peer.certs.stranger_key.read_bytes() + peer.certs.stranger_cert.read_bytes())
    connection = link(peer.certs, "MTLS", **{"listener.name.mtls.ssl.keystore.location": str(stranger)}
                      ).connection(peer.registration(), "test")
    with pytest.raises(InterBrokerLoginError, match="broker 7 at MTLS://127.0.0.1:[0-9]+: TLS .*refused"):
        await metadata(connection)
