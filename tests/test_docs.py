"""docs/recipe.md explains every key that the advanced preset sets."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _leaves(node, path=()):
    """(top section, leaf key) for every value the YAML sets; the items of a list (the stages) count as leaves
    of their section."""
    if isinstance(node, list):
        for item in node:
            yield from _leaves(item, path)
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, key))
    else:
        yield path[0], path[-1]


def test_recipe_doc_covers_every_key_of_the_advanced_preset():
    """Each key appears by name in the key column of a row of the recipe table under its section, and each row
    gives a measured contribution or says it was not ablated."""
    raw = yaml.safe_load((ROOT / "configs" / "advanced.yaml").read_text())
    raw.pop("description")
    table = [ln for ln in (ROOT / "docs" / "recipe.md").read_text().splitlines() if ln.startswith("|")][2:]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in table]
    missing = [
        f"{section}.{leaf}"
        for section, leaf in _leaves(raw)
        if not any(f"`{section}" in r[1] and leaf in r[1].replace("`", " ") for r in rows)
    ]
    assert not missing, f"docs/recipe.md's table does not name {missing}"
    vague = [r[0] for r in rows if not any(ch.isdigit() for ch in r[3]) and "not ablated" not in r[3]]
    assert not vague, f"rows without a figure or 'not ablated': {vague}"
