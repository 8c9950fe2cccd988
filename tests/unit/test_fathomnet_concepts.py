"""Concept -> class mapping and record conversion (pure functions, tiny literal inputs)."""

from __future__ import annotations

import pytest

from marauder.data.fathomnet.concepts import alias_lookup, assign_classes, close_names, normalise, resolve
from marauder.data.fathomnet.records import group_key, image_file_name, label_text
from marauder.errors import DataError

CLASSES = ["lionfish", "purple_sea_urchin", "abalone"]
ALIASES = {"lionfish": ["Pterois"], "purple sea urchin": ["Strongylocentrotus purpuratus"], "abalone": ["Haliotis"]}


@pytest.mark.parametrize("name, expected", [
    ("Purple sea urchin", "purple_sea_urchin"), ("  Pterois volitans ", "pterois_volitans"),
    ("sea-star", "sea_star"), ("Sp. 1", "sp_1"),
])
def test_normalise(name, expected):
    assert normalise(name) == expected


@pytest.mark.parametrize("asked, classes, indices", [
    (["Pterois", "Purple sea urchin", "Abalone"], CLASSES, [0, 1, 2]),  # the guide's second command
    (["Pterois", "Strongylocentrotus purpuratus", "Haliotis"], CLASSES, [0, 1, 2]),  # the config's concepts
    (["Abalone", "Pterois"], CLASSES, [2, 0]),
    (["Sebastes", "Pterois"], CLASSES, [3, 0]),  # not configured: appended, configured indices stay
])
def test_assign_classes(asked, classes, indices):
    final, got = assign_classes(asked, classes, ALIASES)
    assert got == indices
    assert final[: len(classes)] == classes
    if 3 in indices:
        assert final[3] == "sebastes"


def test_assign_classes_without_configured_classes():
    assert assign_classes(["Pterois", "Purple sea urchin"], [], {}) == (["pterois", "purple_sea_urchin"], [0, 1])


def test_alias_lookup_and_close_names():
    assert alias_lookup("PURPLE SEA URCHIN", ALIASES) == ["Strongylocentrotus purpuratus"]
    assert alias_lookup("purple_sea_urchin", ALIASES) == ["Strongylocentrotus purpuratus"]
    assert alias_lookup("kelp", ALIASES) is None
    assert close_names("Pterois volitanz", ["Pterois volitans", "Pterois miles", "Haliotis"])[0] == "Pterois volitans"


class _Client:
    """Answers like FathomNetClient (it is the network layer that is swapped out here)."""

    def known_concepts(self):
        return ["Pterois volitans", "Pterois miles", "Haliotis rufescens"]

    def descendants(self, name):
        return {"Pterois": ["Pterois", "Pterois volitans", "Pterois miles", "Pterois lunulata"]}.get(name, [])

    def scientific_name(self, name):
        return {"red abalone": "Haliotis rufescens"}.get(name)


def test_resolve_descendants_exact_and_unknown():
    classes, asked = resolve(["Pterois", "red abalone"], CLASSES, ALIASES, _Client())
    assert [a.concepts for a in asked] == [["Pterois volitans", "Pterois miles"], ["Haliotis rufescens"]]
    assert [a.via for a in asked] == ["name", "worms"] and classes[3] == "red_abalone"
    with pytest.raises(DataError, match="unknown concept 'Pterois'"):  # exact: no box says just "Pterois"
        resolve(["Pterois"], CLASSES, ALIASES, _Client(), include_descendants=False)
    with pytest.raises(DataError, match="close names: Pterois volitans"):
        resolve(["Pterois volitan"], CLASSES, {}, _Client())
    with pytest.raises(DataError, match="asked twice"):
        resolve(["Abalone", "abalone"], CLASSES, ALIASES, _Client())


def test_records():
    assert image_file_name("u1", "https://x/a/b/IMG.PNG?x=1") == "u1.png"
    assert image_file_name("u1", "https://x/a/b/noext") == "u1.jpg"
    assert group_key("a@b", "2019-01-03T21:00:00Z", 1.0, 2.0, "u") == "a@b/2019-01-03"
    assert group_key(None, None, 36.123, -122.0, "u") == "unknown/36.12,-122.00"
    assert group_key(None, None, None, None, "u9") == "unknown/u9"
    entry = {"width": 100, "height": 50, "boxes": [
        {"class_index": 1, "x": 10, "y": 10, "width": 20, "height": 10},
        {"class_index": None, "x": 0, "y": 0, "width": 5, "height": 5},  # unasked: not a label
        {"class_index": 0, "x": 90, "y": 40, "width": 20, "height": 20},  # clipped to the image
    ]}
    assert label_text(entry) == "1 0.200000 0.300000 0.200000 0.200000\n0 0.950000 0.900000 0.100000 0.200000\n"
