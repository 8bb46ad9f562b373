"""TLS client principals: the certificate subject as an RFC 2253 name, mapped by Kafka's
`ssl.principal.mapping.rules`.

Rules (Kafka's SslPrincipalMapper) are tried in order: `DEFAULT` gives the name unchanged;
`RULE:pattern/replacement/[L|U]` applies when the Java regex `pattern` matches the whole name,
replaces (`$1` refers to a group) and optionally lower- or upper-cases the result. When no rule
applies the connection is refused, as Kafka does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# getpeercert() attribute names -> the RFC 2253 keywords Java's X500Principal prints
_KEYWORDS = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
             "localityName": "L", "stateOrProvinceName": "ST", "streetAddress": "STREET", "domainComponent": "DC",
             "userId": "UID"}
_RULE = re.compile(r"\s*(?:(DEFAULT)|RULE:((?:[^/\\]|\\.)*)/((?:[^/\\]|\\.)*)/([LU]?))\s*(?:,|\n|$)")


@dataclass(frozen=True, slots=True)
class MappingRule:
    pattern: re.Pattern[str] | None  # None: DEFAULT
    replacement: str = ""
    case: str = ""  # "", "L" or "U"

    def apply(self, name: str) -> str | None:
        if self.pattern is None:
            return name
        if not self.pattern.fullmatch(name):
            return None
        result = self.pattern.sub(self.replacement, name)
        return result.lower() if self.case == "L" else result.upper() if self.case == "U" else result


def parse_mapping_rules(text: str) -> tuple[MappingRule, ...]:
    rules: list[MappingRule] = []
    position, text = 0, text.strip()
    while position < len(text):
        match = _RULE.match(text, position)
        if match is None or match.end() == position:
            raise ValueError(f"ssl.principal.mapping.rules: cannot parse {text[position:]!r}")
        if match.group(1):
            rules.append(MappingRule(None))
        else:
            try:
                pattern = re.compile(match.group(2))
            except re.error as exc:
                raise ValueError(f"ssl.principal.mapping.rules: bad pattern {match.group(2)!r}: {exc}") from exc
            # Java's replacement syntax: $1 is a group, \x a literal x.
            replacement = re.sub(r"\$(\d+)", r"\\g<\1>", match.group(3))
            rules.append(MappingRule(pattern, replacement, match.group(4)))
        position = match.end()
    return tuple(rules) or (MappingRule(None),)


def map_principal(rules: tuple[MappingRule, ...], name: str) -> str:
    for rule in rules:
        mapped = rule.apply(name)
        if mapped is not None:
            return mapped
    raise ValueError(f"No rules apply to {name}, rules {rules}")


def distinguished_name(subject: Any) -> str:
    """getpeercert()["subject"] (RDNs, most general first) -> `CN=client,OU=...,O=...,C=...`."""
    rdns = []
    for rdn in reversed(subject):
        rdns.append("+".join(f"{_KEYWORDS.get(key, key)}={_escape(value)}" for key, value in rdn))
    return ",".join(rdns)


def _escape(value: str) -> str:
    escaped = re.sub(r'([,+"\\<>;=])', r"\\\1", value)
    if escaped.startswith((" ", "#")):
        escaped = "\\" + escaped
    if escaped.endswith(" ") and not escaped.endswith("\\ "):
        escaped = escaped[:-1] + "\\ "
    return escaped
