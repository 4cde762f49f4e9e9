"""Design rules that code review alone would let slip."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "exporter"
EMULATORS = ROOT / "emulators"


def imported_modules(path: Path, package: str) -> list[tuple[str, bool]]:
    """(module, imported at module level) for every import in ``path``; relative imports resolved in ``package``."""
    tree = ast.parse(path.read_text(), str(path))
    top_level = set()
    for node in tree.body:  # module level, including imports under a top-level if/try
        top_level.update(id(n) for n in ast.walk(node) if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            top_level.difference_update(id(n) for n in ast.walk(node) if n is not node)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = (package + "." + (node.module or "")).rstrip(".") if node.level else node.module or ""
            found.append((module, id(node) in top_level))
            found += [(f"{module}.{alias.name}", id(node) in top_level) for alias in node.names]
    return found


#: the only module of the exporter the emulators may use: the neutral YAML loader (no client, parser or signer)
SHARED_WITH_EMULATORS = {"exporter.yamlfile"}


def test_emulators_never_import_client_code():
    """A shared signing or parsing bug must not be able to pass every test: the emulators stand on their own,
    but for the neutral YAML loader."""
    paths = list(EMULATORS.rglob("*.py"))
    assert len(paths) >= 8
    for path in paths:
        for module, _ in imported_modules(path, "emulators"):
            if module.split(".")[0] == "exporter":
                assert module in SHARED_WITH_EMULATORS or module.rsplit(".", 1)[0] in SHARED_WITH_EMULATORS, (
                    f"{path.relative_to(ROOT)} imports {module}"
                )


def test_the_shared_yaml_loader_is_neutral():
    """What the emulators share must itself import nothing of the exporter."""
    for module in SHARED_WITH_EMULATORS:
        path = ROOT / (module.replace(".", "/") + ".py")
        assert {m for m, _ in imported_modules(path, "exporter") if m.split(".")[0] == "exporter"} == set(), path


def test_the_exporter_never_imports_the_emulators():
    """Only the --demo glue (exporter/demo.py) uses them, and only the command line imports it, lazily."""
    for path in PACKAGE.rglob("*.py"):
        for module, top in imported_modules(path, "exporter"):
            if path.name != "demo.py":
                assert module.split(".")[0] != "emulators", f"{path.relative_to(ROOT)} imports {module}"
            if module == "exporter.demo":
                assert path.name == "cli.py" and not top, (
                    f"{path.relative_to(ROOT)} imports exporter.demo at module level"
                )


def test_running_the_exporter_loads_no_emulator_module():
    code = (
        "import pkgutil, importlib, sys, exporter\n"
        "for m in pkgutil.walk_packages(exporter.__path__, 'exporter.'):\n"
        "    if m.name not in ('exporter.demo', 'exporter.__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] == 'emulators'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_polling_runs_on_the_event_loop_without_thread_pools_or_locks():
    """Issue 14: no BackgroundScheduler anywhere, no thread pool or lock in the polling runtime (the poller, the
    rate limiter, the providers), and optional provider capabilities are declared, never probed."""
    runtime = [
        *sorted((PACKAGE / "poller").glob("*.py")),
        PACKAGE / "ratelimit.py",
        PACKAGE / "merge.py",
        *sorted((PACKAGE / "providers").rglob("*.py")),
    ]
    for path in sorted(PACKAGE.rglob("*.py")):
        assert "BackgroundScheduler" not in path.read_text(), path
    for path in runtime:
        text = path.read_text()
        for banned in (
            "ThreadPoolExecutor",
            "threading.Lock",
            "threading.RLock",
            "threading.Condition",
            "hasattr(",
            "getattr(rt.provider",
            "getattr(actor.provider",
            "getattr(self.provider",
        ):
            assert banned not in text, (path, banned)
    assert "AsyncIOScheduler" in (PACKAGE / "poller" / "facade.py").read_text()
