"""Listeners, TLS and SASL with real clients against a broker subprocess.

One broker serves five listeners side by side:
    PLAINTEXT       no security (admin calls of the tests go here)
    SSL             TLS, no client certificate
    MTLS            TLS with ssl.client.auth=required (a listener named MTLS mapped to SSL)
    SASL_PLAINTEXT  PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    SASL_SSL        SCRAM-SHA-256, SCRAM-SHA-512 (PLAIN is not enabled here), advertised as localhost
Certificates are made at test time (tests/certificates.py). SCRAM user `sam` is added with
`kbroker scram-user` before the broker starts; PLAIN user `alice` comes from the listener's JAAS config.
"""
from __future__ import annotations

import json
import re
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.certificates import Certificates, make_certificates
from compat_tests.clients import AioKafka, Client, ConfluentKafka, KafkaPython, Kcat, admin_for
from compat_tests.records import simple_records
from kbroker.errors import ErrorCode
from kbroker.wire.messages.api_versions import API_VERSIONS, ApiVersionsRequest
from kbroker.wire.messages.metadata import METADATA, MetadataRequest
from kbroker.wire.messages.sasl_authenticate import SASL_AUTHENTICATE, SaslAuthenticateRequest
from kbroker.wire.messages.sasl_handshake import SASL_HANDSHAKE, SaslHandshakeRequest
from tests.broker_process import BrokerProcess, free_port
from tests.cluster_process import ClusterProcesses
from tests.wire_client import WireClient

LISTENERS = ("PLAINTEXT", "SSL", "MTLS", "SASL_PLAINTEXT", "SASL_SSL")
PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'username="admin" password="admin-secret" user_alice="alice-secret";')
SCRAM_USER, SCRAM_PASSWORD = "sam", "sam-secret"


@dataclass
class SecureBroker:
    process: BrokerProcess
    ports: dict[str, int]
    certs: Certificates

    def bootstrap(self, listener: str) -> str:
        return f"127.0.0.1:{self.ports[listener]}"


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    base = tmp_path_factory.mktemp("security")
    certs = make_certificates(base / "certs")
    data_dir = base / "data"
    added = subprocess.run([sys.executable, "-m", "kbroker", "scram-user", "--data-dir", str(data_dir),
                            "--user", SCRAM_USER, "--password", SCRAM_PASSWORD], capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    assert SCRAM_PASSWORD not in (data_dir / "scram-credentials.json").read_text()
    ports = {name: free_port() for name in LISTENERS}
    overrides = {
        "listeners": ",".join(f"{name}://127.0.0.1:{port}" for name, port in ports.items()),
        "advertised.listeners": f"SASL_SSL://localhost:{ports['SASL_SSL']}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SSL:SSL,MTLS:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,"
                                          "SASL_SSL:SASL_SSL",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certs.server),
        "ssl.truststore.location": str(certs.ca),
        "listener.name.mtls.ssl.client.auth": "required",
        "listener.name.mtls.ssl.principal.mapping.rules": "RULE:^CN=([^,]*),.*$/$1/L,DEFAULT",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
    }
    process = BrokerProcess(data_dir, overrides, port=ports["PLAINTEXT"]).start()
    yield SecureBroker(process, ports, certs)
    process.stop()


def security_settings(client: Client, protocol: str, certs: Certificates, mechanism: str | None = None,
                      user: str | None = None, password: str | None = None,
                      client_cert: tuple[str, str] | None = None) -> dict:
    """The client's own names for a security protocol, SASL login and TLS trust."""
    tls = protocol in ("SSL", "SASL_SSL")
    if isinstance(client, (ConfluentKafka, Kcat)):
        settings = {"security.protocol": protocol}
        if tls:
            settings["ssl.ca.location"] = str(certs.ca)
        if client_cert:
            settings["ssl.certificate.location"], settings["ssl.key.location"] = client_cert
        if mechanism:
            settings.update({"sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password})
        return settings
    settings = {"security_protocol": protocol}
    if mechanism:
        settings.update({"sasl_mechanism": mechanism, "sasl_plain_username": user, "sasl_plain_password": password})
    if tls and isinstance(client, AioKafka):
        from aiokafka.helpers import create_ssl_context
        settings["ssl_context"] = create_ssl_context(cafile=str(certs.ca), certfile=client_cert and client_cert[0],
                                                     keyfile=client_cert and client_cert[1])
    elif tls:
        settings["ssl_cafile"] = str(certs.ca)
        if client_cert:
            settings["ssl_certfile"], settings["ssl_keyfile"] = client_cert
    return settings


def new_topic(secure: SecureBroker) -> str:
    name = f"secure-{uuid.uuid4().hex[:10]}"
    admin_for(ConfluentKafka(), secure.bootstrap("PLAINTEXT")).create_topic(name, partitions=1)
    return name


def round_trip(client: Client, secure: SecureBroker, listener: str, settings: dict, n: int = 20) -> None:
    """Produce n records through `listener` and read them back through it."""
    topic = new_topic(secure)
    secured = client.with_settings(**settings)
    records = simple_records(client, n)
    deliveries = secured.produce(secure.bootstrap(listener), topic, records)
    assert all(d.error_code is None and not d.error for d in deliveries), deliveries[:3]
    received = secured.consume(secure.bootstrap(listener), topic, {0: (0, n)}, timeout=30)
    assert [r.sent(with_timestamp=records[0].timestamp is not None) for r in received] == list(records)


CLIENTS = [KafkaPython(), ConfluentKafka(), AioKafka()]
LOGINS = [("SSL", None, None, None), ("SASL_PLAINTEXT", "PLAIN", "alice", "alice-secret"),
          ("SASL_PLAINTEXT", "SCRAM-SHA-256", SCRAM_USER, SCRAM_PASSWORD),
          ("SASL_PLAINTEXT", "SCRAM-SHA-512", SCRAM_USER, SCRAM_PASSWORD),
          ("SASL_SSL", "SCRAM-SHA-256", SCRAM_USER, SCRAM_PASSWORD),
          ("SASL_SSL", "SCRAM-SHA-512", SCRAM_USER, SCRAM_PASSWORD)]


@pytest.mark.parametrize("client", CLIENTS, ids=repr)
@pytest.mark.parametrize("protocol, mechanism, user, password", LOGINS,
                         ids=[f"{p}-{m or 'TLS'}" for p, m, _, _ in LOGINS])
def test_produce_and_consume(secure, client, protocol, mechanism, user, password):
    settings = security_settings(client, protocol, secure.certs, mechanism, user, password)
    round_trip(client, secure, protocol, settings)


def test_kcat_over_sasl_ssl(secure):
    kcat = Kcat()
    round_trip(kcat, secure, "SASL_SSL",
               security_settings(kcat, "SASL_SSL", secure.certs, "SCRAM-SHA-512", SCRAM_USER, SCRAM_PASSWORD))


@pytest.mark.parametrize("client", CLIENTS, ids=repr)
def test_mutual_tls_with_a_client_certificate(secure, client):
    certs = secure.certs
    settings = security_settings(client, "SSL", certs, client_cert=(str(certs.client_cert), str(certs.client_key)))
    round_trip(client, secure, "MTLS", settings, n=5)


def confluent_errors(secure: SecureBroker, listener: str, settings: dict) -> list:
    """What librdkafka reports trying to reach `listener` with `settings` (its error callback)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient
    errors: list = []
    admin = AdminClient({"bootstrap.servers": secure.bootstrap(listener), "error_cb": errors.append, **settings})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=1)
    deadline = time.monotonic() + 10
    while not errors and time.monotonic() < deadline:  # error_cb runs from poll()
        admin.poll(0.2)
    return errors


@pytest.mark.parametrize("certificate", [None, "stranger", "expired"])
def test_mutual_tls_refuses_clients_without_a_trusted_certificate(secure, certificate):
    certs = secure.certs
    client_cert = ((str(getattr(certs, f"{certificate}_cert")), str(getattr(certs, f"{certificate}_key")))
                   if certificate else None)
    errors = confluent_errors(secure, "MTLS", security_settings(ConfluentKafka(), "SSL", certs,
                                                                  client_cert=client_cert))
    assert errors, "the client saw no error"
    assert_still_serving(secure)


def assert_still_serving(secure: SecureBroker) -> None:
    with WireClient(secure.bootstrap("PLAINTEXT")) as wire:
        assert wire.request(API_VERSIONS.key, 3, ApiVersionsRequest()).error_code == 0


@pytest.mark.parametrize("mechanism, user, password, expected", [
    ("SCRAM-SHA-256", SCRAM_USER, "wrong", "Invalid user credentials"),
    ("SCRAM-SHA-512", "nobody", SCRAM_PASSWORD, "Invalid user credentials"),
    ("PLAIN", "alice", "wrong", "Invalid username or password"),
])
def test_failed_logins_are_authentication_errors(secure, mechanism, user, password, expected):
    from confluent_kafka import KafkaError
    protocol = "SASL_PLAINTEXT"
    errors = confluent_errors(secure, protocol, security_settings(ConfluentKafka(), protocol, secure.certs,
                                                                  mechanism, user, password))
    assert any(e.code() == KafkaError._AUTHENTICATION and expected in e.str() for e in errors), errors
    assert_still_serving(secure)


def test_a_mechanism_the_listener_does_not_enable_is_refused(secure):
    from confluent_kafka import KafkaError
    errors = confluent_errors(secure, "SASL_SSL", security_settings(ConfluentKafka(), "SASL_SSL", secure.certs,
                                                                    "PLAIN", "alice", "alice-secret"))
    assert any(e.code() == KafkaError._AUTHENTICATION and "SCRAM-SHA-256,SCRAM-SHA-512" in e.str()
               for e in errors), errors
    assert_still_serving(secure)


def test_kafka_python_gets_an_authentication_error(secure, caplog):
    """kafka-python logs the broker's error and keeps retrying until its bootstrap gives up."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError as KPError
    settings = security_settings(KafkaPython(), "SASL_PLAINTEXT", secure.certs, "SCRAM-SHA-256", SCRAM_USER, "x")
    with pytest.raises(KPError):
        KafkaConsumer(bootstrap_servers=secure.bootstrap("SASL_PLAINTEXT"), bootstrap_timeout_ms=2000,
                      reconnect_backoff_max_ms=100, **settings).topics()
    assert "SaslAuthenticationFailedError: Authentication failed: Invalid user credentials" in caplog.text


def test_each_listener_advertises_its_own_endpoint(secure):
    from confluent_kafka.admin import AdminClient
    certs = secure.certs
    expected = {"PLAINTEXT": ("127.0.0.1", secure.ports["PLAINTEXT"]),
                "SASL_SSL": ("localhost", secure.ports["SASL_SSL"])}  # advertised.listeners names localhost
    settings = {"PLAINTEXT": {}, "SASL_SSL": security_settings(ConfluentKafka(), "SASL_SSL", certs, "SCRAM-SHA-256",
                                                               SCRAM_USER, SCRAM_PASSWORD)}
    for listener, (host, port) in expected.items():
        brokers = AdminClient({"bootstrap.servers": secure.bootstrap(listener), **settings[listener]}
                              ).list_topics(timeout=20).brokers
        assert [(b.host, b.port) for b in brokers.values()] == [(host, port)], listener
    described = admin_for(KafkaPython(), secure.bootstrap("PLAINTEXT")).describe_cluster()
    assert described.brokers == ((1, "127.0.0.1", secure.ports["PLAINTEXT"]),)


def test_a_user_added_with_alter_user_scram_credentials_can_log_in(secure):
    from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialUpsertion)
    admin = AdminClient({"bootstrap.servers": secure.bootstrap("PLAINTEXT")})
    user = f"newbie-{uuid.uuid4().hex[:6]}"
    futures = admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
        user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), b"fresh-password")])
    for future in futures.values():
        future.result(timeout=20)
    described = admin.describe_user_scram_credentials([user])[user].result(timeout=20)
    infos = described.scram_credential_infos
    assert [(i.mechanism, i.iterations) for i in infos] == [(ScramMechanism.SCRAM_SHA_512, 8192)]
    client = ConfluentKafka()
    round_trip(client, secure, "SASL_SSL", security_settings(client, "SASL_SSL", secure.certs, "SCRAM-SHA-512",
                                                             user, "fresh-password"), n=3)


def test_requests_before_authentication_close_the_connection(secure):
    bootstrap = secure.bootstrap("SASL_PLAINTEXT")
    with WireClient(bootstrap) as wire:  # Metadata without a handshake
        wire.send(METADATA.key, 1, MetadataRequest(topics=None))
        assert wire.is_closed_by_peer()
    with WireClient(bootstrap) as wire:  # SaslAuthenticate before SaslHandshake
        wire.send(SASL_AUTHENTICATE.key, 1, SaslAuthenticateRequest(auth_bytes=b"\0alice\0alice-secret"))
        assert wire.is_closed_by_peer()
    with WireClient(bootstrap) as wire:  # ApiVersions is allowed first, then an unknown mechanism
        assert wire.request(API_VERSIONS.key, 0, ApiVersionsRequest()).error_code == 0
        answer = wire.request(SASL_HANDSHAKE.key, 1, SaslHandshakeRequest(mechanism="GSSAPI"))
        assert answer.error_code == ErrorCode.UNSUPPORTED_SASL_MECHANISM
        assert answer.mechanisms == ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
        assert wire.is_closed_by_peer()
    assert_still_serving(secure)


def test_legacy_v0_handshake_with_raw_tokens(secure):
    with WireClient(secure.bootstrap("SASL_PLAINTEXT")) as wire:
        answer = wire.request(SASL_HANDSHAKE.key, 0, SaslHandshakeRequest(mechanism="PLAIN"))
        assert answer.error_code == 0
        token = b"\0alice\0alice-secret"
        wire.send_raw(len(token).to_bytes(4, "big") + token)
        assert wire.receive_frame() == b""  # PLAIN's empty server token, length-prefixed
        assert wire.request(METADATA.key, 1, MetadataRequest(topics=None)).brokers[0].port == \
            secure.ports["SASL_PLAINTEXT"]
    with WireClient(secure.bootstrap("SASL_PLAINTEXT")) as wire:  # a wrong password: no frame to answer in
        assert wire.request(SASL_HANDSHAKE.key, 0, SaslHandshakeRequest(mechanism="PLAIN")).error_code == 0
        token = b"\0alice\0wrong"
        wire.send_raw(len(token).to_bytes(4, "big") + token)
        assert wire.is_closed_by_peer()


def test_sasl_authenticate_v2_failure_is_answered_then_closed(secure):
    with WireClient(secure.bootstrap("SASL_PLAINTEXT")) as wire:
        assert wire.request(SASL_HANDSHAKE.key, 1, SaslHandshakeRequest(mechanism="PLAIN")).error_code == 0
        answer = wire.request(SASL_AUTHENTICATE.key, 2, SaslAuthenticateRequest(auth_bytes=b"\0alice\0nope"))
        assert answer.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED
        assert "Invalid username or password" in answer.error_message
        assert wire.is_closed_by_peer()


def test_a_cluster_answers_each_client_with_its_own_listener_of_every_broker(zookeeper, tmp_path):
    """Each broker registers all its listeners in ZooKeeper (Kafka's `endpoints`); replication runs
    over PLAINTEXT (inter.broker.listener.name's default) while clients log in on SASL_PLAINTEXT.
    A SCRAM user added through one broker lands in ZooKeeper's /config/users and logs in on the other."""
    from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion
    cluster = ClusterProcesses(zookeeper, tmp_path / "cluster", 2, {
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS})
    ports = {}
    for node, broker in cluster.brokers.items():
        ports[node] = {"PLAINTEXT": broker.port, "SASL_PLAINTEXT": free_port()}
        broker.overrides["listeners"] = ",".join(f"{name}://127.0.0.1:{port}" for name, port in ports[node].items())
    cluster.start()
    try:
        login = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN", "sasl.username": "alice",
                 "sasl.password": "alice-secret"}
        for listener, settings in (("PLAINTEXT", {}), ("SASL_PLAINTEXT", login)):
            for via in cluster.brokers:
                brokers = AdminClient({"bootstrap.servers": f"127.0.0.1:{ports[via][listener]}", **settings}
                                      ).list_topics(timeout=20).brokers
                assert {b.id: b.port for b in brokers.values()} == {n: ports[n][listener] for n in ports}, listener
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{ports[1]['PLAINTEXT']}"})
        for future in admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
                "carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"carol-secret")]).values():
            future.result(timeout=20)
        document = json.loads(zookeeper_get(zookeeper, cluster.chroot + "/config/users/carol"))
        assert document["version"] == 1 and list(document["config"]) == ["SCRAM-SHA-256"]
        assert re.fullmatch(r"salt=\S+,stored_key=\S+,server_key=\S+,iterations=4096", document["config"]["SCRAM-SHA-256"])
        assert "carol-secret" not in json.dumps(document)
        carol = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "carol",
                 "sasl.password": "carol-secret", "bootstrap.servers": f"127.0.0.1:{ports[2]['SASL_PLAINTEXT']}"}
        deadline = time.monotonic() + 20
        while True:  # broker 2 learns of carol through its ZooKeeper watch
            errors: list = []
            try:
                AdminClient({**carol, "error_cb": errors.append}).list_topics(timeout=2)
                break
            except Exception:
                assert time.monotonic() < deadline, errors
    finally:
        cluster.stop()


def zookeeper_get(zookeeper, path: str) -> bytes:
    from kazoo.client import KazooClient
    client = KazooClient(hosts=zookeeper.connect)
    client.start(timeout=10)
    try:
        return client.get(path)[0]
    finally:
        client.stop()
        client.close()


REAUTH_MS = 1500


@pytest.fixture(scope="module")
def reauth_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """A SASL_PLAINTEXT broker whose sessions last REAUTH_MS (connections.max.reauth.ms, KIP-368)."""
    port = free_port()
    process = BrokerProcess(tmp_path_factory.mktemp("reauth") / "data", {
        "listeners": f"SASL_PLAINTEXT://127.0.0.1:{port}", "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
        "connections.max.reauth.ms": str(REAUTH_MS)}, port=port).start()
    yield process
    process.stop()


def test_librdkafka_re_authenticates_before_its_session_expires(reauth_broker):
    from confluent_kafka import Producer
    errors: list = []
    settings = {"bootstrap.servers": reauth_broker.bootstrap, "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "PLAIN", "sasl.username": "alice", "sasl.password": "alice-secret",
                "error_cb": errors.append}
    producer = Producer(settings)
    delivered: list = []
    started = time.monotonic()
    while time.monotonic() - started < 3 * REAUTH_MS / 1000:  # several session lifetimes of steady traffic
        producer.produce("reauth", b"x", on_delivery=lambda error, message: delivered.append(error))
        producer.poll(0.05)
    assert producer.flush(20) == 0
    assert delivered and set(delivered) == {None}
    assert errors == []
    assert "expired without re-authentication" not in reauth_broker.log()


def test_a_session_not_re_authenticated_is_closed(reauth_broker):
    with WireClient(reauth_broker.bootstrap) as wire:
        assert wire.request(SASL_HANDSHAKE.key, 1, SaslHandshakeRequest(mechanism="PLAIN")).error_code == 0
        answer = wire.request(SASL_AUTHENTICATE.key, 1, SaslAuthenticateRequest(auth_bytes=b"\0alice\0alice-secret"))
        started = time.monotonic()
        assert answer.error_code == 0 and answer.session_lifetime_ms == REAUTH_MS
        deadline = started + 10
        while time.monotonic() < deadline:  # served until the session ends, then closed
            try:
                wire.request(METADATA.key, 1, MetadataRequest(topics=[]))
            except (ConnectionError, struct.error, OSError):
                break
        elapsed = time.monotonic() - started
    # the broker's clock started when it answered, a little before ours
    assert REAUTH_MS / 1000 - 0.1 <= elapsed < 10


def test_before_authentication_frames_are_bounded(secure):
    """An anonymous peer may not make the broker buffer socket.request.max.bytes (Kafka's
    sasl.server.max.receive.size, 512 KiB): a bigger size prefix closes the connection at once."""
    with WireClient(secure.bootstrap("SASL_PLAINTEXT")) as wire:
        wire.send_raw((1 << 20).to_bytes(4, "big"))
        assert wire.is_closed_by_peer()
    assert "larger than the limit of 524288 bytes" in secure.process.log()


def test_the_wrong_protocol_on_a_port_is_refused(secure):
    """A plaintext client on the TLS port, a TLS client on the plaintext port: each closed, the
    broker serving on."""
    import ssl
    with WireClient(secure.bootstrap("SSL")) as wire:
        wire.send(API_VERSIONS.key, 3, ApiVersionsRequest())
        assert wire.is_closed_by_peer()
    context = ssl.create_default_context(cafile=str(secure.certs.ca))
    with socket.create_connection(("127.0.0.1", secure.ports["PLAINTEXT"]), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            context.wrap_socket(raw, server_hostname="127.0.0.1")
    assert_still_serving(secure)


def test_rsyslog_ships_over_sasl_ssl(secure, tmp_path):
    """rsyslog's omkafka (librdkafka 2.0.2) with its confParam settings, as a log pipeline runs it."""
    from compat_tests.test_log_pipeline import SHIPPERS, shipping, syslog_lines
    rsyslog = next(shipper for shipper in SHIPPERS if shipper.name == "rsyslog")
    topic = new_topic(secure)
    params = security_settings(Kcat(), "SASL_SSL", secure.certs, "SCRAM-SHA-256", SCRAM_USER, SCRAM_PASSWORD)
    options = " confParam=[" + ",".join(f'"{key}={value}"' for key, value in params.items()) + "]"
    sent = syslog_lines(100)
    with shipping(rsyslog, tmp_path, secure.bootstrap("SASL_SSL"), topic, options) as port:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall("".join(line + "\n" for line in sent).encode())
        received = ConfluentKafka().consume(secure.bootstrap("PLAINTEXT"), topic, {0: (0, len(sent))}, timeout=60)
    assert sorted(r.value for r in received) == sorted(line.encode() for line in sent)


def test_a_password_guessing_loop_is_refused_quietly(secure):
    """Hundreds of wrong passwords from one client: each refused, the log bounded (rate-limited
    failure lines), and a legitimate client served meanwhile."""
    bootstrap = secure.bootstrap("SASL_PLAINTEXT")
    logged_before = secure.process.log_path.read_text().count("Failed authentication with")
    for attempt in range(300):
        with WireClient(bootstrap) as wire:
            assert wire.request(SASL_HANDSHAKE.key, 1, SaslHandshakeRequest(mechanism="PLAIN")).error_code == 0
            answer = wire.request(SASL_AUTHENTICATE.key, 2,
                                  SaslAuthenticateRequest(auth_bytes=f"\0alice\0guess{attempt}".encode()))
            assert answer.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED
    client = ConfluentKafka()
    round_trip(client, secure, "SASL_PLAINTEXT",
               security_settings(client, "SASL_PLAINTEXT", secure.certs, "PLAIN", "alice", "alice-secret"), n=3)
    logged = secure.process.log_path.read_text().count("Failed authentication with") - logged_before
    assert 1 <= logged <= 30, logged  # 10 a listener per 10 s


def test_scram_credential_requests_get_kafkas_errors(secure):
    from kbroker.wire.messages import alter_user_scram_credentials as alter
    from kbroker.wire.messages import describe_user_scram_credentials as describe
    upsert = alter.ScramCredentialUpsertion
    with WireClient(secure.bootstrap("PLAINTEXT")) as wire:
        answer = wire.request(alter.ALTER_USER_SCRAM_CREDENTIALS.key, 0, alter.AlterUserScramCredentialsRequest(
            deletions=[alter.ScramCredentialDeletion(name="twice", mechanism=1),
                       alter.ScramCredentialDeletion(name="ghost", mechanism=2)],
            upsertions=[upsert(name="twice", mechanism=1, iterations=4096, salt=b"s", salted_password=b"p"),
                        upsert(name="weak", mechanism=1, iterations=1000, salt=b"s", salted_password=b"p"),
                        upsert(name="odd", mechanism=9, iterations=4096, salt=b"s", salted_password=b"p"),
                        upsert(name="", mechanism=1, iterations=4096, salt=b"s", salted_password=b"p")]))
        assert {r.user: r.error_code for r in answer.results} == {
            "twice": ErrorCode.DUPLICATE_RESOURCE, "ghost": ErrorCode.RESOURCE_NOT_FOUND,
            "weak": ErrorCode.UNACCEPTABLE_CREDENTIAL, "odd": ErrorCode.UNSUPPORTED_SASL_MECHANISM,
            "": ErrorCode.UNACCEPTABLE_CREDENTIAL}
        answer = wire.request(describe.DESCRIBE_USER_SCRAM_CREDENTIALS.key, 0,
                              describe.DescribeUserScramCredentialsRequest(users=[
                                  describe.UserName(name=n) for n in (SCRAM_USER, "ghost", "ghost")]))
        results = {r.user: (r.error_code, [(i.mechanism, i.iterations) for i in r.credential_infos])
                   for r in answer.results}
        assert results == {SCRAM_USER: (0, [(1, 4096), (2, 4096)]), "ghost": (ErrorCode.DUPLICATE_RESOURCE, [])}
