"""Each registered field type: what it accepts (and stores) and what it refuses."""

import pytest

from workspaces.field_types import FieldValueError, clean_record_data, field_types

SPEC = {"options": ["a", "b"]}
CASES = {
    "text": ([("hi", "hi"), (12, "12")], [["x"], {"a": 1}, True, "nul\x00", "x" * 10_001]),
    "long_text": ([("line\nline", "line\nline")], [["x"], "x" * 200_001]),
    "number": ([(3, 3), ("4", 4), ("2.5", 2.5), (1.0, 1)], ["x", True, "nan", "1e400", 10**21, "1" * 200]),
    "boolean": ([(True, True), ("false", False), (1, True)], ["maybe", 2, []]),
    "date": ([("2025-01-31", "2025-01-31")], ["2025-02-30", "31/01/2025", 20250131]),
    "datetime": ([("2025-01-15T10:00:00Z", "2025-01-15T10:00:00+00:00")], ["soon", "2025-13-01T00:00:00"]),
    "email": ([(" a@b.co ", "a@b.co")], ["a@", 5, "a@b.co\x00"]),
    "url": ([("https://x.org/p", "https://x.org/p")], ["ftp://x.org", "x", "https://x.org/\x00"]),
    "select": ([("a", "a")], ["c", ["a"], 1]),
    "multi_select": ([(["a", "b", "a"], ["a", "b"]), ("a, b", ["a", "b"])], [["c"], [1], {"a": 1}]),
}


def test_every_registered_type_has_cases():
    assert set(CASES) == set(field_types.names())


@pytest.mark.parametrize("type_name", list(CASES))
def test_type_accepts_and_refuses(type_name):
    ftype = field_types.get(type_name)
    good, bad = CASES[type_name]
    for value, stored in good:
        assert ftype.clean(value, SPEC) == stored
    for value in bad:
        with pytest.raises(FieldValueError):
            ftype.clean(value, SPEC)


def test_clean_record_data_required_unknown_partial():
    fields = [{"name": "name", "type": "text", "required": True}, {"name": "n", "type": "number", "required": False}]
    assert clean_record_data(fields, {"name": "A", "n": ""}) == ({"name": "A", "n": None}, {})
    assert clean_record_data(fields, {"n": 1})[1] == {"name": ["This field is required."]}
    assert clean_record_data(fields, {"n": 1}, partial=True) == ({"n": 1}, {})
    assert "x" in clean_record_data(fields, {"name": "A", "x": 1})[1]
    assert clean_record_data(fields, ["A"])[1] == {"data": ["Must be an object of field values."]}


@pytest.mark.parametrize("type_name", list(CASES))
def test_type_compares_and_filters_its_own_values(type_name):
    ftype = field_types.get(type_name)
    for _, stored in CASES[type_name][0]:
        assert ftype.equals(stored, stored)
        assert ftype.is_in(stored, [stored])
        if ftype.ordered:
            assert ftype.sort_key(stored) is not None and ftype.sort_key(stored) == ftype.sort_key(stored)
    assert ftype.lookup_q("data__x", "isnull", "true", SPEC) is not None


def test_numbers_and_dates_compare_by_value_text_by_string():
    number, date, text = field_types.get("number"), field_types.get("datetime"), field_types.get("text")
    assert number.equals(1, "1.0") and number.sort_key("10") > number.sort_key(9)
    assert date.equals("2025-01-15T10:00:00Z", "2025-01-15T11:00:00+01:00")
    assert not text.equals("1", 1) and text.sort_key(10) < text.sort_key(9)
