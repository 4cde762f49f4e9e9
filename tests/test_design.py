"""Design rules that code review alone would let slip."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "exporter"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import inside the emulator package
                found.add("emulators." + (node.module or ""))
            else:
                found.add(node.module or "")
    return found


def test_emulators_never_import_client_code():
    """A shared signing or parsing bug must not be able to pass every test."""
    for path in (PACKAGE / "emulator").rglob("*.py"):
        for module in imported_modules(path):
            if module.startswith("exporter"):
                assert module.startswith("emulators"), f"{path.name} imports {module}"


def test_clients_never_import_the_emulators():
    for path in PACKAGE.rglob("*.py"):
        if "emulator" in path.parts or path.name in ("demo.py", "cli.py"):
            continue
        for module in imported_modules(path):
            assert not module.startswith("emulators"), f"{path} imports {module}"
