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
                found.add("exporter.emulator." + (node.module or ""))
            else:
                found.add(node.module or "")
    return found


#: the only module of the exporter the emulators may use: the neutral YAML loader (no client, parser or signer)
SHARED_WITH_EMULATORS = {"exporter.yamlfile"}


def test_emulators_never_import_client_code():
    """A shared signing or parsing bug must not be able to pass every test."""
    for path in (PACKAGE / "emulator").rglob("*.py"):
        for module in imported_modules(path):
            if module.startswith("exporter") and not module.startswith("exporter.emulator"):
                assert module in SHARED_WITH_EMULATORS, f"{path.name} imports {module}"


def test_the_shared_yaml_loader_is_neutral():
    """What the emulators share must itself import nothing of the exporter."""
    for module in SHARED_WITH_EMULATORS:
        path = PACKAGE.parent / (module.replace(".", "/") + ".py")
        assert {m for m in imported_modules(path) if m.startswith("exporter")} == set(), path


def test_clients_never_import_the_emulators():
    for path in PACKAGE.rglob("*.py"):
        if "emulator" in path.parts or path.name in ("demo.py", "cli.py"):
            continue
        for module in imported_modules(path):
            assert not module.startswith("exporter.emulator"), f"{path} imports {module}"
