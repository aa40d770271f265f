"""The package stays readable: the size and import rules of docs/architecture.md, enforced."""
import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "pixelrnn"
MAX_FILE_LINES = 450
MAX_FUNCTION_LINES = 80
# The sampling engines set up many views and buffers in one go; their __init__ may be longer.
LONG_FUNCTIONS_ALLOWED = {("sampling", "__init__")}
PRIVATE_CALLS_ALLOWED = {"_exit"}  # os._exit (cli.entry), the standard library's own name


def modules():
    return sorted(p for p in SRC.rglob("*.py"))


def rel(path: Path) -> str:
    return str(path.relative_to(SRC.parent)) if path.is_relative_to(SRC.parent) else str(path)


@pytest.mark.parametrize("path", modules(), ids=rel)
def test_no_source_file_is_longer_than_the_limit(path):
    lines = path.read_text().count("\n")
    assert lines <= MAX_FILE_LINES, f"{rel(path)} has {lines} lines (at most {MAX_FILE_LINES})"


def long_functions(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES and (path.parent.name, node.name) not in LONG_FUNCTIONS_ALLOWED:
                out.append(f"{rel(path)}:{node.lineno} {node.name} ({length} lines)")
    return out


def test_no_function_is_longer_than_the_limit():
    found = [f for p in modules() for f in long_functions(p)]
    assert not found, f"functions over {MAX_FUNCTION_LINES} lines: {found}"


def private_crossings(path: Path) -> list[str]:
    """Imports of an underscore name from another module, and calls of an underscore method or
    function on anything but self / cls / super() / a class of the same module (that is another
    object's private part)."""
    out = []
    tree = ast.parse(path.read_text())
    own = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}  # this module's
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            out += [f"{rel(path)}:{node.lineno} imports {a.name} from {node.module}"
                    for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name, owner = node.func.attr, node.func.value
            if not name.startswith("_") or name.startswith("__") or name in PRIVATE_CALLS_ALLOWED:
                continue
            if isinstance(owner, ast.Name) and (owner.id in ("self", "cls") or owner.id in own):
                continue
            if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
                continue
            out.append(f"{rel(path)}:{node.lineno} calls .{name}()")
    return out


def test_no_private_name_crosses_a_module_border():
    found = [f for p in modules() for f in private_crossings(p)]
    assert not found, f"private names used across modules: {found}"


def test_the_rules_see_what_they_should(tmp_path):
    """The checks above find what they look for (so that a green run means something)."""
    bad = tmp_path / "bad.py"
    bad.write_text("from .x import _hidden\n\ndef f(model):\n    return model._logits(1) + self._ok()\n")
    found = private_crossings(bad)
    assert len(found) == 2 and "imports _hidden" in found[0] and "calls ._logits()" in found[1]
    long = tmp_path / "long.py"
    long.write_text("def f():\n" + "    x = 1\n" * MAX_FUNCTION_LINES + "    return x\n")
    assert long_functions(long) and not long_functions(bad)
