"""The allow-list's rules: what they match, how a session narrows them, which addresses no name may lead to."""

from __future__ import annotations

import ipaddress

import pytest

from langchain_kubernetes_agent_sandbox import InvalidArgumentError
from langchain_kubernetes_agent_sandbox.network.policy import EgressPolicy, is_public, parse_rules
from langchain_kubernetes_agent_sandbox.network.settings import operator_policy


def operator(*rules: str) -> EgressPolicy:
    policy = operator_policy(rules)
    assert policy is not None
    return policy


def test_a_wildcard_matches_names_below_its_domain_not_the_domain_itself() -> None:
    policy = operator("*.pkgs.test")
    assert policy.refusal("a.pkgs.test", 443) is None
    assert policy.refusal("deep.a.PKGS.test.", 80) is None
    assert policy.refusal("pkgs.test", 443) == "name not allowed"
    assert policy.refusal("evilpkgs.test", 443) == "name not allowed"


def test_ports_are_the_defaults_unless_a_rule_names_its_own() -> None:
    policy = operator("pkgs.test", "git.test:9418")
    assert policy.refusal("pkgs.test", 443) is None
    assert policy.refusal("pkgs.test", 22) == "port not allowed"
    assert policy.refusal("git.test", 9418) is None
    assert policy.refusal("git.test", 443) == "port not allowed"


def test_a_star_matches_every_name_but_the_address_check_still_applies() -> None:
    policy = operator("*")
    assert policy.refusal("anything.test", 80) is None
    assert policy.refusal("127.0.0.1", 80) is None  # refused later, by address: see the proxy tests


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1",
     "fe80::1", "fd00:ec2::254", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "224.0.0.1", "ff02::1", "::"],
)  # fmt: skip
def test_loopback_link_local_private_metadata_and_multicast_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


def test_globally_routed_addresses_are_public() -> None:
    assert is_public(ipaddress.ip_address("11.22.33.44"))
    assert is_public(ipaddress.ip_address("2a00::1"))
    assert not is_public(ipaddress.ip_address("192.0.2.7"))  # documentation ranges route nowhere


def test_a_session_may_narrow_the_operators_rules() -> None:
    narrowed = operator("*.pkgs.test", "git.test").narrowed(["mirror.pkgs.test:443"])
    assert narrowed.refusal("mirror.pkgs.test", 443) is None
    assert narrowed.refusal("mirror.pkgs.test", 80) == "port not allowed"
    assert narrowed.refusal("other.pkgs.test", 443) == "name not allowed"
    assert narrowed.refusal("git.test", 443) == "name not allowed"
    assert narrowed.reachable == ("mirror.pkgs.test:443",)


@pytest.mark.parametrize("wider", ["*", "*.test", "pkgs.test", "other.test", "git.test:22", "*.pkgs.test:8080"])
def test_a_session_may_not_ask_for_more_than_the_operator_allows(wider: str) -> None:
    with pytest.raises(InvalidArgumentError, match="asks for more than this server allows") as refused:
        operator("*.pkgs.test", "git.test").narrowed([wider])
    assert "*.pkgs.test:80,443" in str(refused.value)


def test_narrowing_twice_stays_within_the_first_narrowing() -> None:
    once = operator("*.pkgs.test").narrowed(["*.a.pkgs.test"])
    assert once.narrowed(["x.a.pkgs.test"]).refusal("x.a.pkgs.test", 443) is None
    with pytest.raises(InvalidArgumentError):
        once.narrowed(["b.pkgs.test"])


@pytest.mark.parametrize("bad", ["", "http://pkgs.test", "pkgs.test:0", "pkgs.test:99999", "a..test", "*a.test", "a b"])
def test_a_malformed_rule_is_refused_with_what_to_write(bad: str) -> None:
    with pytest.raises(InvalidArgumentError, match="network rule"):
        parse_rules([bad])


def test_ip_literal_rules_take_ports_and_brackets() -> None:
    policy = operator("[2001:db8::1]:8443", "192.0.2.7")
    assert policy.refusal("[2001:db8::1]", 8443) is None
    assert policy.refusal("2001:db8::1", 80) == "port not allowed"
    assert policy.refusal("192.0.2.7", 443) is None


def test_a_policy_survives_its_json_form() -> None:
    policy = operator_policy(["*.pkgs.test", "git.test:22"], private=["git.test:22"])
    assert policy is not None
    narrowed = policy.narrowed(["a.pkgs.test"])
    assert EgressPolicy.from_json(narrowed.to_json()) == narrowed


def test_exceptions_for_private_addresses_need_an_allow_list() -> None:
    with pytest.raises(ValueError, match="egress_allow is empty"):
        operator_policy([], private=["pkgs.test"])
    assert operator_policy([]) is None
