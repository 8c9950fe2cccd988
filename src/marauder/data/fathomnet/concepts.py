"""From what the user asked for to FathomNet concepts and training classes.

Each asked name becomes exactly one training class:
1. the name is looked up in the alias map (case-insensitive) -> FathomNet concepts; without an
   alias, WoRMS is asked what the name is (a common name resolves to its taxon), else it is used as is;
2. unless `exact`, every WoRMS descendant of those concepts is added ("Pterois" -> P. volitans, ...);
3. only concepts FathomNet actually has boxes for are kept; none left is an error listing close names.

The class of an asked name, in `general.classes` order: the class whose normalised name equals the
asked name's ("Purple sea urchin" -> purple_sea_urchin), else the class whose alias list contains it
("Pterois" -> lionfish via aliases.lionfish). An asked name matching no class is appended after the
configured ones (with a warning), so indices of configured classes never move.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ...errors import DataError


def normalise(name: str) -> str:
    """Class-name form: lower case, runs of spaces/hyphens/dots -> one underscore."""
    return re.sub(r"[\s\-.]+", "_", name.strip().lower()).strip("_")


@dataclass
class AskedConcept:
    asked: str
    class_name: str
    class_index: int
    via: str  # alias | worms | name
    roots: list[str]
    concepts: list[str] = field(default_factory=list)  # roots + descendants FathomNet has boxes for

    def as_dict(self) -> dict:
        return {"asked": self.asked, "class": self.class_name, "class_index": self.class_index,
                "via": self.via, "roots": self.roots, "concepts": self.concepts}


def assign_classes(asked: list[str], classes: list[str], aliases: dict[str, list[str]]) -> tuple[list[str], list[int]]:
    """Return (final class list, class index per asked name). See the module docstring."""
    final = list(classes)
    norm_classes = [normalise(c) for c in final]
    alias_by_class: dict[int, set[str]] = {}
    for key, targets in aliases.items():
        if normalise(key) in norm_classes:
            idx = norm_classes.index(normalise(key))
            alias_by_class.setdefault(idx, set()).update(t.strip().lower() for t in targets)
    indices = []
    for name in asked:
        n = normalise(name)
        idx = norm_classes.index(n) if n in norm_classes else None
        if idx is None:
            idx = next((i for i, targets in sorted(alias_by_class.items()) if name.strip().lower() in targets), None)
        if idx is None:
            final.append(n)
            norm_classes.append(n)
            idx = len(final) - 1
        indices.append(idx)
    return final, indices


def alias_lookup(name: str, aliases: dict[str, list[str]]) -> list[str] | None:
    wanted = name.strip().lower()
    for key, targets in aliases.items():
        if key.strip().lower() == wanted or normalise(key) == normalise(name):
            return list(targets)
    return None


def close_names(name: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    pool = sorted(set(candidates))
    lower = {c.lower(): c for c in pool}
    hits = difflib.get_close_matches(name.lower(), list(lower), n=n, cutoff=0.6)
    sub = [c for c in pool if name.lower() in c.lower() and c.lower() not in hits]
    return [lower[h] for h in hits] + sub[: max(0, n - len(hits))]


def resolve(asked: list[str], classes: list[str], aliases: dict[str, list[str]], client,
            include_descendants: bool = True) -> tuple[list[str], list[AskedConcept]]:
    """Resolve asked names against FathomNet/WoRMS through `client` (a FathomNetClient)."""
    if not asked:
        raise DataError("no concepts to download: pass --concepts or set data.fathomnet.concepts")
    dupes = sorted({normalise(a) for a in asked if [normalise(x) for x in asked].count(normalise(a)) > 1})
    if dupes:
        raise DataError(f"concept asked twice: {', '.join(dupes)}")
    from concurrent.futures import ThreadPoolExecutor

    final_classes, indices = assign_classes(asked, classes, aliases)
    roots_by_name = {name: alias_lookup(name, aliases) for name in asked}
    # Every lookup that does not depend on another runs at once: with 50+ ms per request this is
    # most of the start-up time.
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="resolve") as pool:
        known_f = pool.submit(client.known_concepts)
        guesses = {r for name in asked for r in (roots_by_name[name] or [name])}
        desc_f = {r: pool.submit(client.descendants, r) for r in sorted(guesses)} if include_descendants else {}
        known = set(known_f.result())
        known_lower = {k.lower(): k for k in known}
        vias = {}
        for name in asked:
            if roots_by_name[name] is not None:
                vias[name] = "alias"
            elif name.lower() in known_lower:
                roots_by_name[name], vias[name] = [known_lower[name.lower()]], "name"
        unknown = [n for n in asked if n not in vias]
        sci_f = {n: pool.submit(client.scientific_name, n) for n in unknown}
        for name in unknown:
            sci = sci_f[name].result()
            if sci and sci.lower() != name.lower():
                roots_by_name[name], vias[name] = [sci], "worms"
                if include_descendants and sci not in desc_f:
                    desc_f[sci] = pool.submit(client.descendants, sci)
            else:
                roots_by_name[name], vias[name] = [name], "name"
        descendants = {r: f.result() for r, f in desc_f.items()}
    out: list[AskedConcept] = []
    for name, idx in zip(asked, indices):
        roots, via = roots_by_name[name], vias[name]
        concepts: list[str] = []
        for root in roots:
            for c in [root, *descendants.get(root, [])]:
                c = known_lower.get(c.lower())
                if c is not None and c not in concepts:
                    concepts.append(c)
        if not concepts:
            hints = close_names(name, list(known) + list(aliases))
            hint = f"; close names: {', '.join(hints)}" if hints else ""
            tried = f" (resolved to {', '.join(roots)})" if roots != [name] else ""
            raise DataError(f"unknown concept '{name}'{tried}: FathomNet has no boxes for it and no alias "
                            f"in data.fathomnet.aliases{hint}")
        out.append(AskedConcept(name, final_classes[idx], idx, via, roots, concepts))
    return final_classes, out
