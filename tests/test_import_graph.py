"""The import graph of yilianti: no module reaches itself through its imports, and the layer
contracts of pyproject.toml's [tool.importlinter] hold.

An import inside a function counts: hiding an import there does not remove the loop, it only
delays it to run time. Imports under `if TYPE_CHECKING:` do not count.
"""

from __future__ import annotations

from pathlib import Path

import grimp
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parent.parent


def test_no_import_cycles() -> None:
    graph = grimp.build_graph("yilianti", exclude_type_checking_imports=True)
    loops = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back:
                loops.append(" -> ".join((module, *back)))
    assert not loops, "import cycles (move the shared part down a layer):\n" + "\n".join(loops)


def test_layer_contracts() -> None:
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0


def test_migrations_form_one_line() -> None:
    """The Alembic revisions form one chain: each id once (two branches landing a `0019` each leave Alembic two
    revisions of one id, and it silently runs one of them), each file named after its revision, one head."""
    import re

    versions = ROOT / "src" / "yilianti" / "migrations" / "versions"
    revs: dict[str, str | None] = {}
    for path in sorted(versions.glob("*.py")):
        source = path.read_text(encoding="utf-8")
        rev = re.search(r"^revision = ['\"](\w+)['\"]", source, re.M)
        down = re.search(r"^down_revision = (?:['\"](\w+)['\"]|None)", source, re.M)
        assert rev and down, f"{path.name}: no revision / down_revision"
        assert rev.group(1) not in revs, f"revision {rev.group(1)} defined twice ({path.name}): renumber yours after main's head"
        assert path.name.startswith(rev.group(1) + "_"), f"{path.name}: file name does not start with its revision {rev.group(1)}"
        revs[rev.group(1)] = down.group(1)
    children = [d for d in revs.values() if d is not None]
    heads = [r for r in revs if r not in children]
    assert len(heads) == 1, f"several heads {heads}: chain yours after main's head"
    assert len(children) == len(set(children)), "two revisions share a down_revision: chain yours after main's head"
