"""Fuzzing the readers of outside input: whatever the bytes, the answer is the documented one-line error
(MarauderError or the edge runtime's PackageError, exit 2), never another exception."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marauder.active.safezip import parse_json_bytes
from marauder.active.vendor_coco import check_against_package, parse_coco
from marauder.config.loader import load_config, parse_override
from marauder.errors import MarauderError
from marauder.formats.yolo import parse_label_text
from marauder.runtime.errors import PackageError
from marauder.runtime.package import read_manifest

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# JSON that looks like COCO: the right keys with values of any type and size
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=8))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=5)),
                      max_leaves=20)
box = st.one_of(values, st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                                           st.integers(-10**30, 10**30)), min_size=0, max_size=6))
annotation = st.fixed_dictionaries({"id": values, "image_id": st.one_of(st.integers(0, 3), values),
                                    "category_id": st.one_of(st.integers(0, 3), values), "bbox": box,
                                    "iscrowd": st.one_of(st.sampled_from([0, 1]), values)})
image = st.fixed_dictionaries({"id": st.one_of(st.integers(0, 3), values), "file_name": values,
                               "width": values, "height": values})
coco = st.fixed_dictionaries({"images": st.one_of(st.lists(image, max_size=4), values),
                              "annotations": st.one_of(st.lists(annotation, max_size=6), values),
                              "categories": st.one_of(st.lists(st.fixed_dictionaries(
                                  {"id": values, "name": values}), max_size=3), values)})


@FUZZ
@given(st.one_of(st.binary(max_size=300), coco.map(lambda d: json.dumps(d).encode())))
def test_vendor_json_of_any_shape_is_a_data_error_or_parses(data):
    from marauder.active.vendor_coco import PackageImage

    try:
        doc = parse_json_bytes(data, "vendor.json", 1 << 20)
        parsed = parse_coco(doc, "vendor.json")
        images = {i: PackageImage(i, f"images/{i}.jpg", 64, 48) for i in (1, 2)}
        check_against_package(parsed, images, ["fish", "ray"], {}, tolerance=2.0, duplicate_iou=0.95)
    except MarauderError as exc:
        assert "\n" not in exc.message and exc.file == "vendor.json"


@FUZZ
@given(st.text(max_size=400))
def test_config_text_of_any_shape_is_a_config_error_or_loads(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass") if "\ud800" not in text else None
    if not path.exists():
        return
    try:
        load_config(path)
    except MarauderError as exc:
        assert str(path) in str(exc) and exc.exit_code == 2


@FUZZ
@given(st.text(max_size=60))
def test_any_override_is_a_config_error_or_parses(text):
    try:
        parse_override(text)
    except MarauderError:
        pass


@FUZZ
@given(st.binary(max_size=300))
def test_any_sha256sums_is_a_package_error_or_reads(tmp_path, data):
    path = tmp_path / "SHA256SUMS"
    path.write_bytes(data)
    try:
        read_manifest(path)
    except PackageError:
        pass


@FUZZ
@given(st.text(max_size=200))
def test_any_label_text_gives_rows_and_issues_and_strict_reading_a_data_error(tmp_path, text):
    from marauder.formats.yolo import read_labels

    rows, issues = parse_label_text(text, "x.txt", num_classes=5)
    assert rows.shape[1] == 5 and all(i.line >= 1 for i in issues)
    path = tmp_path / "x.txt"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        assert len(read_labels(path, num_classes=5)) == len(rows)
    except MarauderError as exc:
        assert str(path) in str(exc)
