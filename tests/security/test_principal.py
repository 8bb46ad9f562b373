"""TLS principals: RFC 2253 subjects and Kafka's ssl.principal.mapping.rules."""
import pytest

from kbroker.security.principal import distinguished_name, map_principal, parse_mapping_rules

DN = "CN=alice-client,OU=kbroker-tests,O=kbroker"


def test_subject_as_rfc2253():
    subject = ((("organizationName", "kbroker"),), (("organizationalUnitName", "kbroker-tests"),),
               (("commonName", "alice-client"),))
    assert distinguished_name(subject) == DN
    assert distinguished_name(((("commonName", "a,b+c"),),)) == "CN=a\\,b\\+c"


@pytest.mark.parametrize("rules, expected", [
    ("DEFAULT", DN),
    ("RULE:^CN=(.*?),OU=(.*?),O=(.*?)$/$1@$3/", "alice-client@kbroker"),
    ("RULE:^CN=(.*?),OU=(.*?),O=(.*?)$/$1/U", "ALICE-CLIENT"),
    ("RULE:^CN=([^,]*),.*$/$1/L, DEFAULT", "alice-client"),
    ("RULE:^CN=nobody,.*$/x/,DEFAULT", DN),  # the first rule does not match: the next one applies
    ("RULE:^CN=nobody,.*$/x/,\nRULE:^CN=(alice)-client.*$/$1/", "alice"),
    ("", DN),  # unset: DEFAULT
])
def test_mapping_rules(rules, expected):
    assert map_principal(parse_mapping_rules(rules), DN) == expected


def test_no_rule_applies():
    with pytest.raises(ValueError, match="No rules apply"):
        map_principal(parse_mapping_rules("RULE:^CN=bob,.*$/bob/"), DN)


@pytest.mark.parametrize("rules", ["RULE:^CN=(.*$/$1/", "NONSENSE", "RULE:abc/def/X"])
def test_bad_rules_are_config_errors(rules):
    with pytest.raises(ValueError, match="ssl.principal.mapping.rules"):
        parse_mapping_rules(rules)
