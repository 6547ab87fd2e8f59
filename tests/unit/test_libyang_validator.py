"""libyang judges validity, yangson explains errors: the two must agree.

``nefeature.datastore.libyang_validator`` is only correct if libyang rejects
everything yangson rejects (otherwise a bad configuration would be accepted
where the binding is installed) and returns the same tree with defaults.
These tests check both on the whole constraint corpus and on the examples,
the memoised pool-overlap rule, and what users get if the validators ever
disagree.  The rpc-errors themselves are pinned, for each validator, in
test_constraints.py.
"""

from __future__ import annotations

import json

import pytest

from nefeature.datastore import libyang_validator, validation
from nefeature.datastore.errors import NetconfError
from nefeature.datastore.schema import data_model
from nefeature.datastore.validation import validate_config, validate_raw
from tests.conftest import EXAMPLES
from tests.unit.test_constraints import CASES, Case, mutated

pytestmark = pytest.mark.skipif(libyang_validator.libyang is None,
                                reason="libyang binding not installed (pyproject extra 'libyang')")

BY_ID = {case.id: case for case in CASES}


def explicit_of(case: Case) -> dict:
    return data_model().from_xml(mutated(case)).raw_value()


def parseable(case: Case) -> bool:
    """yangson maps some cases (unknown elements, wrong types) before any validator runs."""
    try:
        explicit_of(case)
    except Exception:
        return False
    return True


@pytest.mark.parametrize("case", [c for c in CASES if parseable(c)], ids=lambda c: c.id)
def test_libyang_rejects_every_instance_yangson_rejects(case):
    with pytest.raises(libyang_validator.Rejected):
        libyang_validator.check(json.dumps(explicit_of(case)))


def example_variants() -> dict[str, bytes]:
    variants = {name: (EXAMPLES / name).read_bytes()
                for name in ("pair/deviceA.xml", "pair/deviceB.xml", "single/server.xml")}
    limited = b"<day>1</day>\n          <hour>0</hour>\n          <minute>0</minute>"
    assert limited in variants["single/server.xml"]
    variants["unlimited lease (type empty)"] = variants["single/server.xml"].replace(
        limited, b"<unlimited/>")
    variants["empty configuration"] = b'<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"/>'
    return variants


@pytest.mark.parametrize("name", list(example_variants()))
def test_both_validators_fill_in_the_same_defaults(name, monkeypatch):
    text = example_variants()[name]
    monkeypatch.setenv("NEFEATURE_VALIDATOR", "")
    by_libyang = validation.validate_config_text(text)
    monkeypatch.setenv("NEFEATURE_VALIDATOR", "yangson")
    by_yangson = validation.validate_config_text(text)
    assert by_libyang.raw == by_yangson.raw
    assert by_libyang.explicit == by_yangson.explicit


def test_the_switch_selects_the_validator(monkeypatch):
    monkeypatch.setenv("NEFEATURE_VALIDATOR", "")
    assert validation.validator() == "libyang"
    monkeypatch.setenv("NEFEATURE_VALIDATOR", "yangson")
    assert validation.validator() == "yangson"


def test_the_memo_context_leaves_out_only_the_pool_overlap_rule():
    overlap = json.dumps(explicit_of(BY_ID["pool-overlap"]))
    with pytest.raises(libyang_validator.Rejected) as caught:
        libyang_validator.check(overlap)
    assert caught.value.errors[0].app_tag == "pool-overlap"
    libyang_validator.check(overlap, (validation._PairwiseMustMemo.RULE,))  # accepted
    outside = json.dumps(explicit_of(BY_ID["gateway-outside-network"]))
    with pytest.raises(libyang_validator.Rejected) as caught:
        libyang_validator.check(outside, (validation._PairwiseMustMemo.RULE,))
    assert caught.value.errors[0].app_tag == "gateway-outside-network"


@pytest.mark.parametrize("case_id", ["gateway-outside-network", "profile-leafref",
                                     "peer-equals-source", "lease-zero"])
def test_libyangs_own_error_matches_yangsons_for_musts_and_leafrefs(case_id):
    """What a user would get should the validators disagree on one of these."""
    case = BY_ID[case_id]
    with pytest.raises(libyang_validator.Rejected) as caught:
        libyang_validator.check(json.dumps(explicit_of(case)))
    error = validation._libyang_error(caught.value.errors[0])
    assert (error.tag, error.app_tag, error.path) == (case.tag, case.app_tag, case.path)


def test_a_configuration_only_libyang_rejects_gets_libyangs_error(monkeypatch):
    monkeypatch.setenv("NEFEATURE_VALIDATOR", "")
    case = BY_ID["lease-zero"]
    explicit = explicit_of(case)
    monkeypatch.setattr(validation, "_validate_with_yangson", lambda instance, signature: None)
    with pytest.raises(NetconfError) as caught:
        validate_raw(explicit)
    assert (caught.value.tag, caught.value.app_tag, caught.value.path) == (
        case.tag, case.app_tag, case.path)


def test_a_rejected_configuration_gets_yangsons_error(monkeypatch):
    monkeypatch.setenv("NEFEATURE_VALIDATOR", "")
    case = BY_ID["section-end-mandatory"]  # libyang words this one differently
    with pytest.raises(NetconfError) as caught:
        validate_config(mutated(case))
    assert (caught.value.tag, caught.value.app_tag, caught.value.path) == (
        case.tag, case.app_tag, case.path)


@pytest.mark.parametrize("value", ["not-an-address", "10.10.10.300"])
def test_a_bad_leaf_list_value_is_rejected_with_libyang_too(value):
    """yangson leaves a value its type rejects out of raw_value(); libyang must not be
    handed a configuration without it (it would accept what yanglint rejects)."""
    from nefeature.datastore.errors import NetconfError
    from nefeature.datastore.validation import validate_config_text

    text = (EXAMPLES / "single" / "server.xml").read_text().replace(
        "<dns-list>10.10.10.53</dns-list>", f"<dns-list>{value}</dns-list>")
    with pytest.raises(NetconfError) as raised:
        validate_config_text(text)
    assert raised.value.tag == "invalid-value" and value in raised.value.message
