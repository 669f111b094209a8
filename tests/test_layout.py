"""The house rules of the layout: config at the ground floor, then utils, then models and llm, then bulk and
tools, bench, and the scripts on top; nothing imports upward, and no script imports another script."""
import ast

from tests.conftest import ROOT

SCRIPTS = {"train", "predict", "evaluate", "compare", "spark_predict"}
FLOOR = {"config": 0, "utils": 1, "models": 2, "llm": 2, "bulk": 3, "tools": 3, "bench": 4}  # a package may import lower floors


def project_imports(path) -> set[str]:
    """The top-level project names a file imports, anywhere in it (function-level imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & (SCRIPTS | set(FLOOR))


def test_packages_import_only_lower_floors_and_no_script():
    for package, floor in FLOOR.items():
        for path in (ROOT / package).rglob("*.py"):
            for name in project_imports(path):
                assert name not in SCRIPTS, f"{path.relative_to(ROOT)} imports the script {name}.py"
                assert name == package or FLOOR[name] < floor, f"{path.relative_to(ROOT)} imports {name} (upward)"


def test_no_script_imports_another_script():
    for script in SCRIPTS:
        imported = project_imports(ROOT / f"{script}.py") & SCRIPTS
        assert not imported - {script}, f"{script}.py imports {imported}"
