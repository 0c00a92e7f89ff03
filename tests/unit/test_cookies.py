"""The cookie scheme: owner round trip, masks, foreign cookies."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ryu_apps.core import cookies
from ryu_apps.core.cookies import CookieKind, Owner, binding_owner, decode_cookie, vlan_owner


@given(kind=st.sampled_from(list(CookieKind)),
       owner_id=st.integers(0, cookies.MAX_OWNER_ID),
       template_id=st.integers(0, 0xFFFF))
def test_owner_round_trips_through_cookie(kind, owner_id, template_id):
    owner = Owner(kind, owner_id, template_id)
    assert decode_cookie(owner.cookie) == owner
    assert owner.cookie >> 56 == cookies.APP_ID


def test_patent_template_is_visible_in_cookie():
    cookie = binding_owner(7, 0x00FA).cookie
    assert hex(cookie) == "0xd9100fa000000007"


def test_owner_mask_selects_one_binding_whatever_its_template():
    a, b = binding_owner(7, 250), binding_owner(8, 250)
    moved = binding_owner(7, 251)
    mask = cookies.OWNER_SELECT_MASK
    assert a.cookie & mask == moved.cookie & mask
    assert a.cookie & mask != b.cookie & mask


@pytest.mark.parametrize("cookie", [0, 0x1234, 0xD8FA000000000001, 0xD900000000000001])
def test_foreign_cookies_are_not_ours(cookie):
    assert decode_cookie(cookie) is None


def test_out_of_range_ids_are_refused():
    with pytest.raises(ValueError, match="owner id"):
        Owner(CookieKind.BINDING, cookies.MAX_OWNER_ID + 1)
    with pytest.raises(ValueError, match="template id 65536"):
        Owner(CookieKind.BINDING, 1, 65536)


def test_describe():
    assert binding_owner(3, 250).describe() == "binding 3 template 250"
    assert vlan_owner(100).describe() == "vlan 100"
    assert cookies.INFRA_OWNER.describe() == "infrastructure"
