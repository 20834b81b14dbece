import ipaddress

import pydantic
import pytest

from l2sm_core.validation import describe_validation_error, dns1123_label, ipv4_prefix


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
