"""Identifier schemes: MAC parsing, the patent example, exact round trips over
each scheme's whole domain, and refusals that say what was wrong.

The ``reference_*`` functions restate the bit layouts of docs/identifiers.md
independently of the implementation; the properties compare the two.
"""

import random

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ryu_apps.core.identifiers import (
    IdentifierError,
    InterleaveScheme,
    PrefixScheme,
    TableScheme,
    check_vm_mac,
    format_mac,
    is_locally_administered,
    normalise_mac,
    parse_mac,
    parse_number,
    scheme_from_spec,
)

MAC_MAX = (1 << 48) - 1
IG = 1 << 40
UL = 1 << 41
WHITENING = 0x243F6A8885A3

macs = st.integers(0, MAC_MAX)
# Generated tables cost more per example; fewer keep the suite fast.
fewer_examples = settings(max_examples=50)


def is_valid_vm_mac(mac: int) -> bool:
    return mac != 0 and not mac & IG


# -- reference layouts ------------------------------------------------------------

def reference_prefix(template_bits, template_id, unique_id):
    return template_id << (48 - template_bits) | unique_id


TEMPLATE_POSITIONS = [2, 6, 10, 14, 18, 22, 26, 30, 34, 38, 42, 46]
UNIQUE_POSITIONS = [p for p in range(48) if p not in TEMPLATE_POSITIONS]


def reference_interleave(template_id, unique_id):
    mac = 0
    for bit, position in enumerate(TEMPLATE_POSITIONS):
        mac |= (template_id >> bit & 1) << position
    for bit, position in enumerate(UNIQUE_POSITIONS):
        mac |= (unique_id >> bit & 1) << position
    return mac ^ WHITENING


def reference_table_match(entries, mac):
    """(length, prefix, template) of the longest entry containing the MAC."""
    best = None
    for prefix, length, template_id in entries:
        if mac >> (48 - length) == prefix >> (48 - length):
            if best is None or length > best[0]:
                best = (length, prefix, template_id)
    return best


# -- MACs --------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["00:FA:83:91:DE:1B", "00-fa-83-91-de-1b",
                                  " 00:fa:83:91:de:1b ", "0:fa:83:91:de:1b"])
def test_parse_mac_accepts_colon_dash_any_case(text):
    assert parse_mac(text) == 0x00FA8391DE1B


@pytest.mark.parametrize("text", ["00:fa:83:91:de", "00:fa:83:91:de:1b:00", "00:fa-83:91:de:1b",
                                  "00fa.8391.de1b", "00:fa:83:91:de:1g", "", "001:fa:83:91:de:1b",
                                  -1, 1 << 48, True, 1.5, None, b"\x00" * 6])
def test_parse_mac_refuses_what_is_not_a_mac(text):
    with pytest.raises(IdentifierError, match="is not a MAC address: expected"):
        parse_mac(text)


@given(macs)
def test_format_and_parse_are_inverse(mac):
    text = format_mac(mac)
    assert text == text.lower() and len(text) == 17
    assert parse_mac(text) == mac
    assert parse_mac(mac) == mac


@pytest.mark.parametrize("mac, reason", [
    ("ff:ff:ff:ff:ff:ff", "broadcast MAC"),
    ("01:00:5e:00:00:01", r"multicast MAC \(I/G bit set\)"),
    ("33:33:00:00:00:01", r"multicast MAC \(I/G bit set\)"),
    ("00:00:00:00:00:00", "all-zero MAC"),
])
def test_check_vm_mac_says_why(mac, reason):
    with pytest.raises(IdentifierError, match=f"{mac}: {reason}"):
        check_vm_mac(mac)


@given(macs)
def test_check_vm_mac_refuses_exactly_multicast_and_zero(mac):
    if is_valid_vm_mac(mac):
        check_vm_mac(mac)
    else:
        with pytest.raises(IdentifierError):
            check_vm_mac(mac)


def test_locally_administered_bit():
    assert is_locally_administered("02:00:00:00:00:01")
    assert not is_locally_administered("00:fa:83:91:de:1b")


def test_identifier_error_is_a_value_error():
    assert issubclass(IdentifierError, ValueError)


@pytest.mark.parametrize("text, value", [("250", 250), ("0x00FA", 250), ("0XfA", 250),
                                         ("0250", 250), (" 7 ", 7), (3, 3)])
def test_parse_number(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["", "-1", "0x", "1.5", "ten", -1, True])
def test_parse_number_refuses(text):
    with pytest.raises(IdentifierError, match="template id .* is not a non-negative decimal"):
        parse_number(text, "template id")


# -- prefix/16 and prefix/12 -------------------------------------------------------

def test_patent_example():
    assert PrefixScheme(16).decode("00:FA:83:91:DE:1B") == 250
    assert PrefixScheme(16).split("00:FA:83:91:DE:1B") == (250, 0x8391DE1B)
    assert PrefixScheme(16).encode(250, 0x8391DE1B) == "00:fa:83:91:de:1b"


def test_prefix_default_width_is_16():
    scheme = PrefixScheme()
    assert (scheme.name, scheme.template_id_range, scheme.unique_id_bits) == \
        ("prefix/16", range(0x10000), 32)
    twelve = PrefixScheme(12)
    assert (twelve.name, twelve.template_id_range, twelve.unique_id_bits) == \
        ("prefix/12", range(0x1000), 36)


@pytest.mark.parametrize("bits", [8, 24, 0, 48, "16", True])
def test_prefix_refuses_other_widths(bits):
    with pytest.raises(IdentifierError, match="not supported: expected 16 .* or 12"):
        PrefixScheme(bits)


@pytest.mark.parametrize("bits", [16, 12])
@given(data=st.data())
def test_prefix_encode_refuses_exactly_invalid_macs_and_round_trips(bits, data):
    scheme = PrefixScheme(bits)
    template_id = data.draw(st.integers(0, (1 << bits) - 1), "template_id")
    unique_id = data.draw(st.integers(0, (1 << (48 - bits)) - 1), "unique_id")
    expected = reference_prefix(bits, template_id, unique_id)
    if not is_valid_vm_mac(expected):
        with pytest.raises(IdentifierError):
            scheme.encode(template_id, unique_id)
        return
    mac = scheme.encode(template_id, unique_id)
    assert mac == format_mac(expected)
    assert scheme.decode(mac) == template_id
    assert scheme.split(mac) == (template_id, unique_id)


@pytest.mark.parametrize("bits", [16, 12])
@given(mac=macs)
def test_prefix_decode_refuses_exactly_invalid_macs(bits, mac):
    scheme = PrefixScheme(bits)
    if not is_valid_vm_mac(mac):
        with pytest.raises(IdentifierError, match=f"under prefix/{bits}: .*never a VM identifier"):
            scheme.decode(mac)
        return
    assert scheme.decode(mac) == mac >> (48 - bits)
    assert scheme.encode(*scheme.split(mac)) == format_mac(mac)


@pytest.mark.parametrize("bits, ig_mask, ul_mask", [(16, 0x0100, 0x0200), (12, 0x010, 0x020)])
def test_prefix_template_bits_on_ig_and_ul(bits, ig_mask, ul_mask):
    scheme = PrefixScheme(bits)
    assert (scheme.template_ig_mask, scheme.template_ul_mask) == (ig_mask, ul_mask)
    with pytest.raises(IdentifierError, match=f"template id has bit 0x{ig_mask:04X} set, "
                                              r"the I/G bit \(MAC bit 40\).*multicast"):
        scheme.encode(0x0A | ig_mask, 1)
    assert is_locally_administered(scheme.encode(0x0A | ul_mask, 1))
    assert not is_locally_administered(scheme.encode(0x0A, 1))


def test_prefix16_decode_refusal_message():
    expected = (r"^decode 01:00:5e:00:00:01 under prefix/16: "
                r"multicast MAC \(I/G bit set\) is never a VM identifier$")
    with pytest.raises(IdentifierError, match=expected):
        PrefixScheme(16).decode("01:00:5e:00:00:01")


@pytest.mark.parametrize("mac, reason", [("ff:ff:ff:ff:ff:ff", "broadcast MAC"),
                                         ("00:00:00:00:00:00", "all-zero MAC"),
                                         (0x0100_0000_0001, r"multicast MAC \(I/G bit set\)")])
@pytest.mark.parametrize("scheme", [PrefixScheme(16), PrefixScheme(12), InterleaveScheme(),
                                    TableScheme({"00:00:00:00:00:00/1": 1})], ids=repr)
def test_every_scheme_refuses_non_vm_macs(scheme, mac, reason):
    with pytest.raises(IdentifierError, match=f"under {scheme.name}: {reason} is never a VM"):
        scheme.decode(mac)


def test_decode_refuses_unparsable_mac_naming_it():
    with pytest.raises(IdentifierError, match="decode under prefix/16: 'nope' is not a MAC"):
        PrefixScheme(16).decode("nope")


@pytest.mark.parametrize("template_id, unique_id, message", [
    (0x10000, 1, r"template id 65536 out of range: expected 0\.\.65535 \(0x0000\.\.0xFFFF\)"),
    (-1, 1, r"template id -1 out of range"),
    (250, 1 << 32, r"unique id 4294967296 out of range: expected 0\.\.4294967295 .*32 bits"),
    (250, -1, r"unique id -1 out of range"),
    ("250", 1, r"template id must be an integer, got '250'"),
    (250, 1.0, r"unique id must be an integer, got 1\.0"),
    (0, 0, r"template 0 with unique id 0 gives the all-zero MAC"),
])
def test_prefix_encode_refusals_say_which_input(template_id, unique_id, message):
    with pytest.raises(IdentifierError, match=r"^encode template .* under prefix/16: " + message):
        PrefixScheme(16).encode(template_id, unique_id)


# -- interleave ----------------------------------------------------------------------

def test_interleave_domains():
    scheme = InterleaveScheme()
    assert (scheme.name, scheme.template_id_range, scheme.unique_id_bits) == \
        ("interleave", range(0x1000), 36)


@given(template_id=st.integers(0, 0xFFF), unique_id=st.integers(0, (1 << 36) - 1))
def test_interleave_encode_refuses_exactly_invalid_macs_and_round_trips(template_id, unique_id):
    scheme = InterleaveScheme()
    expected = reference_interleave(template_id, unique_id)
    if not is_valid_vm_mac(expected):
        with pytest.raises(IdentifierError):
            scheme.encode(template_id, unique_id)
        return
    mac = scheme.encode(template_id, unique_id)
    assert mac == format_mac(expected)
    assert scheme.decode(mac) == template_id
    assert scheme.split(mac) == (template_id, unique_id)


@given(mac=macs)
def test_interleave_decode_is_exact_inverse_on_every_vm_mac(mac):
    scheme = InterleaveScheme()
    if not is_valid_vm_mac(mac):
        with pytest.raises(IdentifierError, match="under interleave: .*never a VM identifier"):
            scheme.decode(mac)
        return
    template_id, unique_id = scheme.split(mac)
    assert scheme.decode(mac) == template_id
    assert reference_interleave(template_id, unique_id) == mac
    assert scheme.encode(template_id, unique_id) == format_mac(mac)


@given(template_id=st.integers(0, 0xFFF), unique_id=st.integers(0, (1 << 36) - 1))
def test_interleave_ig_and_ul_are_unique_id_bits_30_and_31(template_id, unique_id):
    mac = reference_interleave(template_id, unique_id)
    assert bool(mac & IG) == bool(unique_id >> 30 & 1)
    assert bool(mac & UL) == bool(unique_id >> 31 & 1)


def test_interleave_refuses_unique_id_on_the_ig_bit():
    with pytest.raises(IdentifierError, match=r"under interleave: unique id has bit 30 "
                                              r"\(0x40000000\) set, which lands on the I/G bit"):
        InterleaveScheme().encode(250, 1 << 30)


def test_interleave_refuses_the_one_all_zero_pair():
    with pytest.raises(IdentifierError,
                       match="template 1412 with unique id 17705879667 gives the all-zero"):
        InterleaveScheme().encode(1412, 0x41F5A4873)


def test_interleave_examples_from_the_docs():
    scheme = InterleaveScheme()
    assert scheme.encode(250, 0) == "24:3f:2e:cc:c5:e3"
    assert scheme.encode(250, 0x80000001) == "26:3f:2e:cc:c5:e2"


# -- table ---------------------------------------------------------------------------

TABLE = {
    "02:aa:00:00:00:00/16": 5,
    "02:aa:bb:00:00:00/24": 7,
    "02:aa:bb:cc:00:00/32": 5,
    "02:00:00:00:00:01": 9,
    "06:00:00:00:00:00/8": 9,
}


@pytest.mark.parametrize("mac, template_id", [
    ("02:aa:01:02:03:04", 5), ("02:aa:bb:01:02:03", 7), ("02:aa:bb:cc:01:02", 5),
    ("02:00:00:00:00:01", 9), ("06:12:34:56:78:9a", 9)])
def test_table_longest_prefix_wins(mac, template_id):
    assert TableScheme(TABLE).decode(mac) == template_id


def test_table_refuses_unmatched_mac_naming_it():
    with pytest.raises(IdentifierError, match="^decode 02:00:00:00:00:02 under table: MAC matches "
                                              "no table entry; expected a MAC under one of"):
        TableScheme(TABLE).decode("02:00:00:00:00:02")


def test_table_encodes_under_the_templates_shortest_prefix():
    scheme = TableScheme(TABLE)
    assert scheme.encoding_entry(5).text == "02:aa:00:00:00:00/16"
    assert scheme.encoding_entry(9).text == "06:00:00:00:00:00/8"
    assert scheme.unique_id_bits_for(5) == 32
    assert scheme.unique_id_bits_for(7) == 24
    assert scheme.unique_id_bits == 40
    assert scheme.template_ids == (5, 7, 9)
    assert scheme.encode(5, 0x01020304) == "02:aa:01:02:03:04"
    assert scheme.encode(5, 0xBBCC0102) == "02:aa:bb:cc:01:02"  # 5 again under /32


def test_table_exact_entry_allows_only_unique_id_zero():
    scheme = TableScheme({"02:00:00:00:00:01": 9})
    assert scheme.encode(9, 0) == "02:00:00:00:00:01"
    with pytest.raises(IdentifierError,
                       match="unique id must be 0: this template has no unique-id bits"):
        scheme.encode(9, 1)


@pytest.mark.parametrize("template_id, unique_id, message", [
    (5, 0xBB000001, r"the MAC 02:aa:bb:00:00:01 falls under the more specific entry "
                    r"02:aa:bb:00:00:00/24 \(template 7\), so it would not decode to template 5"),
    (3, 0, r"template id 3 has no table entry; the table has templates 5, 7, 9"),
    (7, 1 << 24, r"unique id 16777216 out of range: expected 0\.\.16777215"),
])
def test_table_encode_refusals(template_id, unique_id, message):
    with pytest.raises(IdentifierError, match=r"^encode template .* under table: " + message):
        TableScheme(TABLE).encode(template_id, unique_id)


def test_table_short_prefix_refuses_unique_id_on_the_ig_bit():
    scheme = TableScheme({"00:00:00:00:00:00/4": 1})
    with pytest.raises(IdentifierError, match=r"unique id has bit 40 \(0x10000000000\) set"):
        scheme.encode(1, 1 << 40)
    assert scheme.encode(1, 1) == "00:00:00:00:00:01"


def test_table_split_of_a_mac_outside_the_encoding_entry():
    scheme = TableScheme({"02:aa:00:00:00:00/16": 5, "0a:00:00:00:00:00/24": 5})
    assert scheme.decode("0a:00:00:00:00:01") == 5
    with pytest.raises(IdentifierError, match="template encodes under 02:aa:00:00:00:00/16, "
                                              "so the MAC has no unique id"):
        scheme.split("0a:00:00:00:00:01")


@pytest.mark.parametrize("entries, message", [
    ({}, "needs at least one entry"),
    ([("02:00:00:00:00:01", 1)], "must be a mapping"),
    ({"02:aa:01:00:00:00/16": 1},
     r"table entry '02:aa:01:00:00:00/16': host bits below /16 must be zero: "
     r"expected 02:aa:00:00:00:00/16"),
    ({"02:aa:00:00:00:00/0": 1},
     r"table entry '02:aa:00:00:00:00/0': prefix length '0' .*expected 1\.\.48"),
    ({"02:aa:00:00:00:00/49": 1}, r"prefix length '49' is not valid"),
    ({"02:aa:00:00:00:00/x": 1}, r"prefix length 'x' is not valid"),
    ({"zz:aa:00:00:00:00/16": 1},
     r"table entry 'zz:aa:00:00:00:00/16': 'zz:aa:00:00:00:00' is not a MAC"),
    ({"03:aa:00:00:00:00/16": 1},
     r"table entry '03:aa:00:00:00:00/16': multicast prefix \(I/G bit set\)"),
    ({"01:00:5e:00:00:01": 1}, r"table entry '01:00:5e:00:00:01': multicast MAC"),
    ({"ff:ff:ff:ff:ff:ff": 1}, "table entry 'ff:ff:ff:ff:ff:ff': broadcast MAC"),
    ({"00:00:00:00:00:00/48": 1}, "table entry '00:00:00:00:00:00/48': all-zero MAC"),
    ({"02:00:00:00:00:01": 0x10000}, r"template id 65536 out of range: expected 0\.\.65535"),
    ({"02:00:00:00:00:01": "1"}, r"template id must be an integer, got '1'"),
    ({"02:00:00:00:00:01": 1, "02:00:00:00:00:01/48": 2},
     r"table entries '02:00:00:00:00:01' and '02:00:00:00:00:01/48' are the same prefix"),
    ({"02:AA:00:00:00:00/16": 1, "02-aa-00-00-00-00/16": 2},
     "are the same prefix 02:aa:00:00:00:00/16"),
])
def test_table_validation_names_the_entry(entries, message):
    with pytest.raises(IdentifierError, match=message):
        TableScheme(entries)


def test_table_random_gives_up_when_every_unique_id_is_shadowed():
    scheme = TableScheme({"02:aa:00:00:00:00/16": 5, "02:aa:00:00:00:00/17": 6,
                          "02:aa:80:00:00:00/17": 7})
    with pytest.raises(IdentifierError, match="no encodable unique id found"):
        scheme.random_unique_id(random.Random(1), 5)


def unicast(mac):
    return mac & ~IG


@st.composite
def tables(draw):
    """Tables whose prefixes nest: every prefix is cut from a few anchor MACs."""
    anchors = draw(st.lists(macs.map(unicast), min_size=1, max_size=3))
    entries, seen = {}, set()
    for _ in range(draw(st.integers(1, 8))):
        anchor = draw(st.sampled_from(anchors))
        length = draw(st.integers(1, 48))
        prefix = anchor >> (48 - length) << (48 - length)
        if (prefix, length) in seen or (length == 48 and prefix == 0):
            continue
        seen.add((prefix, length))
        exact = length == 48 and draw(st.booleans())
        key = format_mac(prefix) if exact else f"{format_mac(prefix)}/{length}"
        entries[key] = draw(st.integers(0, 3) | st.integers(0, 0xFFFF))
    assume(entries)
    return entries


def entry_triples(entries):
    triples = []
    for key, template_id in entries.items():
        mac, _, length = key.partition("/")
        triples.append((parse_mac(mac), int(length or 48), template_id))
    return triples


def draw_mac_near(data, triples):
    """A MAC inside one of the entries (or anywhere), to exercise nesting."""
    prefix, length, _ = data.draw(st.sampled_from(triples))
    host = data.draw(st.integers(0, (1 << (48 - length)) - 1))
    return data.draw(st.sampled_from([prefix | host, data.draw(macs)]))


@fewer_examples
@given(entries=tables(), data=st.data())
def test_table_encode_refuses_exactly_invalid_macs_and_round_trips(entries, data):
    scheme = TableScheme(entries)
    triples = entry_triples(entries)
    template_id = data.draw(st.sampled_from(sorted(set(entries.values()))), "template_id")
    length, prefix = min((n, p) for p, n, t in triples if t == template_id)
    host_mask = (1 << (48 - length)) - 1
    unique_id = data.draw(st.integers(0, host_mask)
                          | st.just(draw_mac_near(data, triples) & host_mask), "unique_id")
    expected = prefix | unique_id
    match = reference_table_match(triples, expected)
    if not is_valid_vm_mac(expected) or match[2] != template_id:
        with pytest.raises(IdentifierError):
            scheme.encode(template_id, unique_id)
        return
    mac = scheme.encode(template_id, unique_id)
    assert mac == format_mac(expected)
    assert scheme.decode(mac) == template_id
    assert scheme.split(mac) == (template_id, unique_id)


@fewer_examples
@given(entries=tables(), data=st.data())
def test_table_decode_is_longest_prefix_match(entries, data):
    scheme = TableScheme(entries)
    triples = entry_triples(entries)
    mac = draw_mac_near(data, triples)
    match = reference_table_match(triples, mac)
    if not is_valid_vm_mac(mac) or match is None:
        with pytest.raises(IdentifierError, match=f"decode {format_mac(mac)} under table"):
            scheme.decode(mac)
        return
    assert scheme.decode(mac) == match[2]


# -- random unique ids -----------------------------------------------------------------

@pytest.mark.parametrize("scheme", [PrefixScheme(16), PrefixScheme(12), InterleaveScheme()],
                         ids=repr)
@fewer_examples
@given(seed=st.integers(0, 2 ** 32), data=st.data())
def test_random_unique_id_always_encodes(scheme, seed, data):
    template_id = data.draw(st.sampled_from(scheme.template_id_range))
    rng = random.Random(seed)
    if isinstance(scheme, PrefixScheme) and template_id & scheme.template_ig_mask:
        with pytest.raises(IdentifierError, match="random unique id for template .* multicast"):
            scheme.random_unique_id(rng, template_id)
        return
    unique_id = scheme.random_unique_id(rng, template_id)
    mac = scheme.encode(template_id, unique_id)
    assert scheme.split(mac) == (template_id, unique_id)
    if isinstance(scheme, InterleaveScheme):
        assert is_locally_administered(mac)


@fewer_examples
@given(entries=tables(), seed=st.integers(0, 2 ** 32), data=st.data())
def test_table_random_unique_id_encodes_or_says_why(entries, seed, data):
    scheme = TableScheme(entries)
    template_id = data.draw(st.sampled_from(scheme.template_ids))
    try:
        unique_id = scheme.random_unique_id(random.Random(seed), template_id)
    except IdentifierError as error:
        assert "no encodable unique id found" in str(error)
        return
    assert scheme.decode(scheme.encode(template_id, unique_id)) == template_id


def test_random_unique_id_is_repeatable_with_a_seed():
    scheme = PrefixScheme(16)
    assert scheme.random_unique_id(random.Random(7), 250) == \
        scheme.random_unique_id(random.Random(7), 250)


def test_random_unique_id_refuses_unknown_template():
    with pytest.raises(IdentifierError, match="random unique id for template 4096 .* under "
                                              "interleave: template id 4096 out of range"):
        InterleaveScheme().random_unique_id(random.Random(1), 4096)


# -- spec strings ---------------------------------------------------------------------

@pytest.mark.parametrize("spec, name", [("prefix/16", "prefix/16"), ("prefix", "prefix/16"),
                                        (" Prefix/12 ", "prefix/12"),
                                        ("interleave", "interleave")])
def test_scheme_from_spec(spec, name):
    assert scheme_from_spec(spec).name == name


def test_scheme_from_spec_table():
    scheme = scheme_from_spec("table", {"02:00:00:00:00:01": 9})
    assert isinstance(scheme, TableScheme) and scheme.decode("02:00:00:00:00:01") == 9


@pytest.mark.parametrize("spec, table_entries, message", [
    ("foo", None, "unknown identifier scheme 'foo': expected one of prefix/16, prefix/12, "
                  r"prefix \(= prefix/16\), interleave, table"),
    ("", None, "unknown identifier scheme ''"),
    (None, None, "unknown identifier scheme None"),
    ("prefix/8", None,
     "identifier scheme 'prefix/8': prefix scheme template width 8 is not supported"),
    ("prefix/x", None,
     "identifier scheme 'prefix/x': prefix scheme template width 'x' is not supported"),
    ("table", None, "identifier scheme 'table' needs table entries"),
    ("prefix/16", {"02:00:00:00:00:01": 9},
     "identifier scheme 'prefix/16' takes no table entries"),
])
def test_scheme_from_spec_refusals(spec, table_entries, message):
    with pytest.raises(IdentifierError, match=message):
        scheme_from_spec(spec, table_entries)


# -- one canonical MAC -------------------------------------------------------------

@pytest.mark.parametrize("value", ["00:FA:83:91:DE:1B", "00-fa-83-91-de-1b", " 0:fa:83:91:de:1b ",
                                   0x00FA8391DE1B])
def test_normalise_mac_gives_the_one_canonical_form(value):
    assert normalise_mac(value) == "00:fa:83:91:de:1b"


def test_normalise_mac_says_where_the_bad_mac_was():
    with pytest.raises(IdentifierError) as caught:
        normalise_mac("00:fa:00:00:00", "templates/macs.yaml: entry 3")
    assert str(caught.value) == (
        "templates/macs.yaml: entry 3: '00:fa:00:00:00' is not a MAC address: expected six "
        "hex octets separated by ':' or '-', like 00:fa:83:91:de:1b")


@pytest.mark.parametrize("text", ["00:FA:83:91:DE:1B", "00-fa-83-91-de-1b", "00:fa:83:91:de",
                                  "00:fa:83:91:de:zz", ""])
def test_every_normaliser_at_the_edges_agrees_with_normalise_mac(text):
    """The REST views, the notifications channel, the OVSDB attachments and the
    `dynprov mac` command give the same MAC, or refuse it with the same words."""
    from ryu_apps.core import attachments
    from ryu_apps.rest import notify, views

    try:
        expected, error = normalise_mac(text), None
    except IdentifierError as refused:
        expected, error = None, str(refused)
    assert attachments.canonical_mac(text) == expected
    if error is None:
        assert views.canonical_mac(text) == expected
        assert notify.parse_notification(
            f'{{"event": "shutdown", "mac": "{text}"}}'.encode())[1] == expected
        return
    with pytest.raises(views.ViewError) as caught:
        views.canonical_mac(text)
    assert str(caught.value) == error
    with pytest.raises(ValueError) as caught_notify:
        notify.parse_notification(f'{{"event": "shutdown", "mac": "{text}"}}'.encode())
    assert str(caught_notify.value) == f"mac: {error}"

