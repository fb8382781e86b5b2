"""The house rules that keep the codebase readable: no import circle, no reference outside the repository,
no measurements or machine names in code, links in the documentation that resolve, functions a reader can follow.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tedsnet", "baselines")
#: Where code, docstrings and config comments live (documentation and results are checked apart).
CODE_PATTERNS = (
    "tedsnet/**/*.py",
    "baselines/**/*.py",
    "workflow/**/*.py",
    "workflow/**/*.smk",
    "workflow/**/*.yaml",
    "tools/*",
)
#: The longest a function may be unless it is a flat table.
MAX_FUNCTION_LINES = 80


def code_files() -> list[Path]:
    files = {path for pattern in CODE_PATTERNS for path in ROOT.glob(pattern)}
    return sorted([*files, ROOT / "Snakefile"])


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Modules of ``known`` that ``path`` imports anywhere (top level or inside a function)."""
    found = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + [base]
                ).strip(".")
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(name for name in names if name in known)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = [path for package in PACKAGES for path in (ROOT / package).rglob("*.py")]
    known = {module_name(path) for path in paths}
    graph = {module_name(path): imported_modules(path, known) for path in paths}
    # A package's __init__ runs before any of its modules, so importing a module also imports its packages.
    for name in list(graph):
        graph[name].discard(name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_a_planted_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_circle():
    graph = import_graph()
    assert "tedsnet.training.engine" in graph and graph["tedsnet.training.engine"], "the graph reads imports"
    assert find_cycle(graph) is None, f"import circle: {' -> '.join(find_cycle(graph))}"


def test_method_never_imports_the_pipeline_around_it():
    """The network code stands alone: a reader of the method needs no other stage."""
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith("tedsnet.network"):
            outside = sorted(t for t in targets if not t.startswith("tedsnet.network"))
            assert not outside, f"{name} imports {outside}; the method must not depend on other stages"


def test_the_data_layer_never_imports_the_stages_after_it():
    """Preparing data needs no training, inference or report code, so the stages stack in one direction (the
    metrics' Betti numbers are shared: the protocol keeps ring slices by them)."""
    later = ("tedsnet.reporting", "tedsnet.training", "tedsnet.inference", "tedsnet.experiments")
    for name, targets in import_graph().items():
        if name.startswith("tedsnet.data"):
            upward = sorted(t for t in targets if t.startswith(later))
            assert not upward, f"{name} imports {upward}; move what it needs into tedsnet.data"


@pytest.mark.parametrize(
    "pattern, why",
    [
        (r"DESIGN\.md", "a design file that is not in the repository"),
        (r"notes/training\.md|results/README\.md", "a file that is not in the repository"),
        (r"/work/|/home/|/Users/|\.\./shared", "a path of a development machine"),
        (r"\b(Xeon|EPYC|Ryzen|Threadripper)\b", "a host name: measurements go to docs/performance.md"),
    ],
)
def test_code_refers_only_to_what_ships(pattern, why):
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in code_files()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(pattern, line)
    ]
    assert not offenders, f"{why}: {offenders}"


def markdown_files() -> list[Path]:
    return [
        ROOT / "README.md",
        *sorted((ROOT / "docs").rglob("*.md")),
        *sorted((ROOT / "workflow").rglob("*.md")),
    ]


def test_documentation_links_resolve():
    broken = []
    for path in markdown_files():
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (path.parent / target.split("#")[0]).exists():
                broken.append(f"{path.relative_to(ROOT)} -> {target}")
    assert not broken, f"links to files that do not exist: {broken}"


def code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function from its ``def`` to its end, less its docstring (a contract is not length to read)."""
    lines = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        lines -= first.end_lineno - first.lineno + 1
    return lines


def test_code_lines_leave_out_the_docstring():
    tree = ast.parse('def f(x):\n    """Doc.\n\n    More.\n    """\n    y = x\n    return y\n')
    assert code_lines(tree.body[0]) == 3


def function_lengths() -> list[tuple[int, str]]:
    lengths = []
    for package in (*PACKAGES, "workflow", "tools"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lengths.append((code_lines(node), f"{path.relative_to(ROOT)}:{node.name}"))
    return sorted(lengths, reverse=True)


def test_functions_fit_on_a_screen():
    long = [f"{name} ({lines} lines)" for lines, name in function_lengths() if lines > MAX_FUNCTION_LINES]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"
