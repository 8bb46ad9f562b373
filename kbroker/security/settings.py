"""Each listener's TLS and SASL settings, under Kafka's names.

Kafka reads `listener.name.<listener>.<key>` first (the listener name in lower case), then the
plain `<key>`: `listener.name.sasl_ssl.ssl.keystore.location` overrides `ssl.keystore.location`
for that listener only. SASL user lists come only from a listener's own JAAS config
(`listener.name.<l>.plain.sasl.jaas.config`), as in Kafka's broker.

The inter-broker listener's settings also say how this broker logs in to the others (Kafka's
broker uses the listener's own config as its client config): its truststore checks their
certificates, its keystore is this broker's client certificate, and the JAAS config of
`sasl.mechanism.inter.broker.protocol` (`listener.name.<l>.<mechanism>.sasl.jaas.config`) holds
this broker's own `username` / `password`.

Keystores are PEM only (Python's `ssl`): `ssl.keystore.location` is a PEM file holding the key
and its certificate chain, or `ssl.keystore.certificate.chain` + `ssl.keystore.key` hold them inline.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping

from kbroker.security.plain import parse_jaas_options, parse_jaas_users
from kbroker.security.principal import MappingRule, parse_mapping_rules

log = logging.getLogger("kbroker.config")

SUPPORTED_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
CLIENT_AUTH = ("none", "requested", "required")
TLS_PROTOCOLS = ("TLSv1.2", "TLSv1.3")

# Keys read here; other `ssl.*` / `sasl.*` keys are Kafka's and accepted without effect.
_USED = ("ssl.keystore.type", "ssl.keystore.location", "ssl.keystore.certificate.chain", "ssl.keystore.key",
         "ssl.key.password", "ssl.truststore.type", "ssl.truststore.location", "ssl.truststore.certificates",
         "ssl.client.auth", "ssl.enabled.protocols", "ssl.cipher.suites", "ssl.principal.mapping.rules",
         "ssl.endpoint.identification.algorithm", "sasl.enabled.mechanisms",
         "sasl.mechanism.inter.broker.protocol")


def is_security_key(name: str) -> bool:
    return name.startswith(("ssl.", "sasl.", "listener.name."))


@dataclass(frozen=True, slots=True)
class TlsSettings:
    keystore_location: str | None
    certificate_chain: str | None  # inline PEM
    key: str | None  # inline PEM
    key_password: str | None
    truststore_location: str | None
    truststore_certificates: str | None  # inline PEM
    client_auth: str  # none | requested | required
    enabled_protocols: tuple[str, ...]
    cipher_suites: tuple[str, ...]
    principal_mapping_rules: tuple[MappingRule, ...]
    check_hostname: bool = True  # ssl.endpoint.identification.algorithm=https: as a client, check the server's name


@dataclass(frozen=True, slots=True)
class SaslSettings:
    mechanisms: tuple[str, ...]
    plain_users: Mapping[str, str]  # user -> password, from the PLAIN JAAS config


@dataclass(frozen=True, slots=True)
class ListenerSecurity:
    name: str
    protocol: str  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    tls: TlsSettings | None
    sasl: SaslSettings | None


@dataclass(frozen=True, slots=True)
class InterBrokerSecurity:
    """How this broker connects to the others: to their `listener`, over its protocol."""
    listener: str
    protocol: str
    tls: TlsSettings | None  # this broker's side of the listener's TLS settings
    sasl_mechanism: str | None = None
    username: str | None = None  # this broker's own login, from the mechanism's JAAS config
    password: str | None = None


def listener_security(name: str, protocol: str, settings: Mapping[str, str]) -> ListenerSecurity:
    """Raises ValueError naming the key at fault."""
    prefix = f"listener.name.{name.lower()}."

    def get(key: str, default: str | None = None) -> str | None:
        value = settings.get(prefix + key, settings.get(key, default))
        return value.strip() if value is not None else None

    for key in settings:
        bare = key[len(prefix):] if key.startswith(prefix) else key
        if not key.startswith("listener.name.") and bare not in _USED:
            log.debug("config %s is not used by kbroker; ignored", key)
    tls = _tls_settings(get) if protocol in ("SSL", "SASL_SSL") else None
    sasl = _sasl_settings(name, get) if protocol.startswith("SASL_") else None
    return ListenerSecurity(name, protocol, tls, sasl)


def inter_broker_security(listener: ListenerSecurity, settings: Mapping[str, str]) -> InterBrokerSecurity:
    """The client side of the inter-broker listener; ValueError for what cannot log in."""
    if listener.sasl is None:
        return InterBrokerSecurity(listener.name, listener.protocol, listener.tls)
    given = settings.get("sasl.mechanism.inter.broker.protocol")
    mechanism = (given or "GSSAPI").strip().upper()
    if mechanism not in SUPPORTED_MECHANISMS:
        raise ValueError(f"sasl.mechanism.inter.broker.protocol={mechanism}{'' if given else ' (Kafka default)'}: "
                         f"kbroker brokers log in to each other with {', '.join(SUPPORTED_MECHANISMS)}; set it to one "
                         f"of them for the inter-broker listener {listener.name} ({listener.protocol})")
    if mechanism not in listener.sasl.mechanisms:
        raise ValueError(f"sasl.mechanism.inter.broker.protocol={mechanism} must be included in "
                         f"sasl.enabled.mechanisms of the inter-broker listener {listener.name} "
                         f"({', '.join(listener.sasl.mechanisms)})")
    key = f"listener.name.{listener.name.lower()}.{mechanism.lower()}.sasl.jaas.config"
    jaas = settings.get(key)
    options = parse_jaas_options(jaas) if jaas is not None else {}
    if not options.get("username") or not options.get("password"):
        raise ValueError(f"{key} needs username=\"...\" password=\"...\": the login this broker uses on the "
                         f"other brokers' {listener.name} listener with {mechanism}")
    return InterBrokerSecurity(listener.name, listener.protocol, listener.tls, mechanism, options["username"],
                               options["password"])


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (text or "").split(",") if item.strip())


def _tls_settings(get) -> TlsSettings:  # type: ignore[no-untyped-def]
    kind = (get("ssl.keystore.type", "PEM") or "PEM").upper()
    if kind != "PEM":
        raise ValueError(f"ssl.keystore.type={kind}: kbroker reads PEM keystores only; set ssl.keystore.type=PEM "
                         "with ssl.keystore.location (key and certificate chain in one PEM file) or "
                         "ssl.keystore.certificate.chain and ssl.keystore.key")
    truststore_kind = (get("ssl.truststore.type", "PEM") or "PEM").upper()
    if truststore_kind != "PEM":
        raise ValueError(f"ssl.truststore.type={truststore_kind}: kbroker reads PEM truststores only; "
                         "set ssl.truststore.type=PEM")
    location, chain, key = get("ssl.keystore.location"), get("ssl.keystore.certificate.chain"), get("ssl.keystore.key")
    if location is None and (chain is None or key is None):
        raise ValueError("a TLS listener needs ssl.keystore.location (a PEM file) or "
                         "ssl.keystore.certificate.chain and ssl.keystore.key")
    client_auth = (get("ssl.client.auth", "none") or "none").lower()
    if client_auth not in CLIENT_AUTH:
        raise ValueError(f"ssl.client.auth={client_auth}: expected one of {', '.join(CLIENT_AUTH)}")
    protocols = _split(get("ssl.enabled.protocols", ",".join(TLS_PROTOCOLS)))
    unknown = [item for item in protocols if item not in TLS_PROTOCOLS]
    if unknown or not protocols:
        raise ValueError(f"ssl.enabled.protocols: {', '.join(unknown) or 'empty'} (kbroker speaks "
                         f"{', '.join(TLS_PROTOCOLS)})")
    return TlsSettings(location, chain, key, get("ssl.key.password"), get("ssl.truststore.location"),
                       get("ssl.truststore.certificates"), client_auth, protocols, _split(get("ssl.cipher.suites")),
                       parse_mapping_rules(get("ssl.principal.mapping.rules", "DEFAULT") or "DEFAULT"),
                       _endpoint_identification(get("ssl.endpoint.identification.algorithm", "https")))


def _endpoint_identification(algorithm: str | None) -> bool:
    """Kafka's default `https` checks the server's host name against its certificate; empty: no check."""
    if algorithm and algorithm.lower() != "https":
        raise ValueError(f"ssl.endpoint.identification.algorithm={algorithm}: expected https or empty")
    return bool(algorithm)


def _sasl_settings(name: str, get) -> SaslSettings:  # type: ignore[no-untyped-def]
    mechanisms = tuple(item.upper() for item in _split(get("sasl.enabled.mechanisms", "GSSAPI")))
    unsupported = [item for item in mechanisms if item not in SUPPORTED_MECHANISMS]
    if unsupported or not mechanisms:
        raise ValueError(f"sasl.enabled.mechanisms of listener {name}: {', '.join(unsupported) or 'none'} "
                         f"(kbroker supports {', '.join(SUPPORTED_MECHANISMS)}; Kafka's default is GSSAPI)")
    users: Mapping[str, str] = {}
    if "PLAIN" in mechanisms:
        jaas = get("plain.sasl.jaas.config")
        if jaas is None:
            raise ValueError(f"PLAIN is enabled on listener {name} but listener.name.{name.lower()}"
                             ".plain.sasl.jaas.config does not name its users")
        users = parse_jaas_users(jaas)
    return SaslSettings(mechanisms, users)
