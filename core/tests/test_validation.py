import ipaddress

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from l2sm_core.validation import (
    ActionParams,
    Flag,
    describe_validation_error,
    dns1123_label,
    dns1123_subdomain,
    image_reference,
    ipv4_prefix,
    route_prefix,
    shown,
    unicast_ipv4,
)
from l2sm_testing.bad_input import json_values, tricky_text


@pytest.mark.parametrize("name", ["a", "net-1", "my-first-osm-net", "0abc", "a" * 63])
def test_dns1123_accepts(name):
    assert dns1123_label(name) == name


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "non-empty"),
        ("Net", "not a DNS-1123 label"),
        ("-net", "not a DNS-1123 label"),
        ("net-", "not a DNS-1123 label"),
        ("net_a", "not a DNS-1123 label"),
        ("net.a", "not a DNS-1123 label"),
        ("a" * 64, "at most 63"),
        # re.match with `$` let these through: "$" matches before a final newline.
        ("ov\n", "not a DNS-1123 label"),
        ("net-a\n", "not a DNS-1123 label"),
        (" net-a", "not a DNS-1123 label"),
    ],
)
def test_dns1123_refuses(name, fragment):
    with pytest.raises(ValueError, match=fragment):
        dns1123_label(name)


def test_prefix_parsed_strictly():
    assert ipv4_prefix(" 10.0.1.0/24 ") == ipaddress.IPv4Network("10.0.1.0/24")
    with pytest.raises(ValueError, match=r"did you mean 10\.0\.1\.0/24"):
        ipv4_prefix("10.0.1.7/24")
    with pytest.raises(ValueError, match=r"a\.b\.c\.d/len"):
        ipv4_prefix("10.0.1.0")
    with pytest.raises(ValueError, match=r"a\.b\.c\.d/len"):
        ipv4_prefix("10.0.300.0/24")
    with pytest.raises(ValueError, match="IPv6"):
        ipv4_prefix("fd00::/64")
    with pytest.raises(ValueError, match=r"did you mean 10\.0\.1\.0/24"):
        ipv4_prefix("10.0.1.0/255.255.255.0")
    with pytest.raises(ValueError, match=r"a\.b\.c\.d/len form"):
        ipv4_prefix("10.0.1.0/024")
    with pytest.raises(ValueError, match="no room"):
        ipv4_prefix("10.0.0.0/31")


def test_validation_error_names_the_field():
    class Params(pydantic.BaseModel):
        network_name: str

        @pydantic.field_validator("network_name")
        @classmethod
        def _check(cls, v):
            return dns1123_label(v)

    with pytest.raises(pydantic.ValidationError) as info:
        Params(network_name="Bad_Name")
    text = describe_validation_error(info.value)
    assert text.startswith("parameter 'network-name': ")
    assert "Value error" not in text
    assert "'Bad_Name' is not a DNS-1123 label" in text


def test_model_level_and_unknown_fields():
    class Config(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")
        low: int = 1
        high: int = 2

        @pydantic.model_validator(mode="after")
        def _order(self):
            if self.low >= self.high:
                raise ValueError("low must be less than high")
            return self

    with pytest.raises(pydantic.ValidationError) as info:
        Config(low=3)
    assert describe_validation_error(info.value, "option") == "low must be less than high"
    with pytest.raises(pydantic.ValidationError) as info:
        Config(other=1)
    assert describe_validation_error(info.value, "option") == "option 'other': unknown option"


@pytest.mark.parametrize(
    ("cidr", "fragment"),
    [
        ("0.0.0.0/0", "too wide"),
        ("8.0.0.0/7", "too wide"),
        ("0.0.0.0/8", "overlaps 0.0.0.0/8"),
        ("127.0.0.0/24", "overlaps 127.0.0.0/8"),
        ("169.254.1.0/24", "overlaps 169.254.0.0/16"),
        ("224.0.0.0/24", "overlaps 224.0.0.0/4"),
        ("240.0.0.0/24", "overlaps 240.0.0.0/4"),
    ],
)
def test_network_cidrs_in_special_ranges_are_refused(cidr, fragment):
    with pytest.raises(ValueError, match=fragment.replace(".", r"\.")):
        ipv4_prefix(cidr)


def test_whitespace_around_a_cidr_is_normalised_away():
    # Callers keep the parsed value, never the raw text.
    assert str(ipv4_prefix("10.0.1.0/24\n")) == "10.0.1.0/24"


def test_route_prefixes():
    assert str(route_prefix("10.0.2.0/24")) == "10.0.2.0/24"
    assert str(route_prefix("10.0.2.7/32")) == "10.0.2.7/32"  # a host route is fine
    assert str(route_prefix("10.0.0.0/8")) == "10.0.0.0/8"
    for bad, fragment in [
        ("0.0.0.0/0", "default route"),
        ("127.0.0.1/32", "127.0.0.0/8"),
        ("224.0.0.0/4", "224.0.0.0/4"),
        ("169.254.0.0/16", "169.254.0.0/16"),
        ("10.0.2.1/24", "host bits"),
        ("10.0.2.0", "a.b.c.d/len"),
    ]:
        with pytest.raises(ValueError, match=fragment):
            route_prefix(bad)


def test_unicast_addresses():
    assert str(unicast_ipv4("10.152.183.20")) == "10.152.183.20"
    for bad in [
        "0.0.0.0",
        "127.0.0.1",
        "224.0.0.1",
        "255.255.255.255",
        "169.254.1.1",
        "10.1.2",
        "10.1.2.3\n",
    ]:
        with pytest.raises(ValueError):
            unicast_ipv4(bad)


@pytest.mark.parametrize(
    "image",
    [
        "alexdecb/talpa:1.3.8",
        "talpa",
        "docker.io/alexdecb/talpa:1.3.8",
        "localhost:5000/l2sm/talpa:dev",
        "registry.example.com/a/b/c@sha256:" + "0" * 64,
        "ghcr.io/org/img:1.0@sha256:" + "a" * 64,
    ],
)
def test_image_references_accepted(image):
    assert image_reference(image) == image


@pytest.mark.parametrize(
    "image",
    [
        "",
        " ",
        "Talpa:1",
        "alexdecb/talpa:",
        "alexdecb/talpa:1.3.8\n",
        "a b",
        "-x/y",
        "x//y",
        "x@sha256:12",
        "x" * 300,
        "alexdecb/talpa:1.3.8\u0430",  # a Cyrillic letter in the tag: \w alone would take it
        "talpa:\u0663",
    ],
)
def test_image_references_refused(image):
    with pytest.raises(ValueError, match=r"image reference|at most 255"):
        image_reference(image)


def test_flags_take_only_true_or_false():
    class Options(pydantic.BaseModel):
        force: Flag = False

    assert Options(force=True).force is True
    assert Options(force="false").force is False
    assert Options(force="TRUE").force is True
    for loose in ["yes", 1, 0, "", "on", None]:
        with pytest.raises(pydantic.ValidationError, match="use true or false"):
            Options(force=loose)


def test_action_params_take_osm_s_application_name():
    class Params(ActionParams):
        name: str = ""

    assert Params(application_name="cdn-router").application_name == "cdn-router"
    assert Params(application_name="").application_name == ""  # absent
    for bad in ["cdn_router", "Cdn", "cdn-", "1cdn", "cdn-1", "cdn\n", "a" * 64]:
        with pytest.raises(pydantic.ValidationError) as info:
            Params(application_name=bad)
        assert describe_validation_error(info.value).startswith("parameter 'application-name': ")
    with pytest.raises(pydantic.ValidationError, match="extra"):
        Params(other=1)


def test_long_values_are_clipped_in_messages():
    assert len(shown("x" * 10_000)) < 80
    with pytest.raises(ValueError) as info:
        dns1123_label("A" * 60)
    assert len(str(info.value)) < 200

    class Params(pydantic.BaseModel):
        cidr: str

        @pydantic.field_validator("cidr")
        @classmethod
        def _cidr(cls, v):
            return str(ipv4_prefix(v))

    with pytest.raises(pydantic.ValidationError) as err:
        Params(cidr="1" * 10_000 + "/24")
    assert len(describe_validation_error(err.value)) < 300


_VALIDATORS = [dns1123_label, dns1123_subdomain, ipv4_prefix, route_prefix, unicast_ipv4, image_reference]


def test_subdomains():
    assert dns1123_subdomain("cdn.video-net") == "cdn.video-net"
    assert dns1123_subdomain("a" * 63 + "." + "b" * 63) == "a" * 63 + "." + "b" * 63
    for bad in ["", "cdn..net", ".cdn", "cdn.", "Cdn.net", "cdn.net\n", "a" * 254]:
        with pytest.raises(ValueError, match=r"DNS-1123 subdomain|at most 253|non-empty"):
            dns1123_subdomain(bad)


@given(
    value=st.one_of(tricky_text(["net-a", "10.0.1.0/24", "10.0.1.1", "alexdecb/talpa:1.3.8"]), json_values())
)
def test_validators_only_ever_raise_value_error(value):
    # Every boundary turns a ValueError into "field: why"; anything else would be a traceback.
    for check in _VALIDATORS:
        try:
            check(value)
        except ValueError as exc:
            assert len(str(exc)) < 300
