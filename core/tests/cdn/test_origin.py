import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from l2sm_core.cdn.origin import OriginProviderAppData


def test_manifest_urls_follow_each_base():
    data = OriginProviderAppData.model_validate({"urls": ["http://10.0.2.10:80/", "https://10.0.3.10/c/"]})
    assert data.manifest == "manifest.json"
    assert data.manifest_urls() == ["http://10.0.2.10:80/manifest.json", "https://10.0.3.10/c/manifest.json"]


@pytest.mark.parametrize(
    "urls",
    [
        [],
        ["ftp://10.0.2.10/"],
        ["http://10.0.2.10"],  # not a directory
        ["http://10.0.2.10/?x=1"],
        ["http://user:pw@10.0.2.10/"],
        ["http://10.0.2.10/"] * 33,
    ],
)
def test_bad_urls_are_refused(urls):
    with pytest.raises(pydantic.ValidationError):
        OriginProviderAppData.model_validate({"urls": urls})


@pytest.mark.parametrize("manifest", ["../x.json", "a/b.json", ".hidden.json", "m.txt", "m a.json", ""])
def test_bad_manifest_names_are_refused(manifest):
    with pytest.raises(pydantic.ValidationError):
        OriginProviderAppData.model_validate({"urls": ["http://10.0.2.10/"], "manifest": manifest})


@given(st.text(max_size=80))
def test_any_manifest_name_is_read_or_refused(name):
    try:
        data = OriginProviderAppData.model_validate({"urls": ["http://10.0.2.10/"], "manifest": name})
    except pydantic.ValidationError:
        return
    assert "/" not in data.manifest and data.manifest.endswith(".json")
