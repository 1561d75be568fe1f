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
