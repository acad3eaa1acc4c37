"""The package as shipped: the ``py.typed`` marker, one exception tree in ``emospec.errors``, imports that flow
one way, and the test command's loud line when the browser tests cannot run."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import tomllib

import conftest
import emospec
from emospec import errors

PACKAGE_DIR = Path(emospec.__file__).resolve().parent
REPO = Path(__file__).resolve().parents[1]


def test_py_typed_is_shipped():
    assert (PACKAGE_DIR / "py.typed").is_file()
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["emospec"]


def _defined_classes(module) -> list:
    return [obj for obj in vars(module).values() if inspect.isclass(obj) and obj.__module__ == module.__name__]


def test_every_exception_is_in_the_errors_tree():
    misplaced, checked = [], 0
    for info in pkgutil.walk_packages(emospec.__path__, "emospec."):
        if info.name == "emospec.__main__":  # importing it runs the CLI: read it instead
            tree = ast.parse((PACKAGE_DIR / "__main__.py").read_text())
            assert not [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
            continue
        module = importlib.import_module(info.name)  # an import error fails the test: nothing is skipped
        checked += 1
        for cls in _defined_classes(module):
            if issubclass(cls, BaseException) and module is not errors:
                misplaced.append(f"{info.name}.{cls.__name__}")
    assert checked > 40  # the walk really saw the package (data/ and serve/ included)
    assert not misplaced, f"exceptions defined outside emospec.errors: {misplaced}"

    tree_classes = [c for c in _defined_classes(errors) if issubclass(c, BaseException)]
    assert {c.__name__ for c in tree_classes} == set(errors.__all__)
    for cls in tree_classes:
        assert issubclass(cls, errors.EmospecError), cls
        assert cls.__name__ in (errors.__doc__ or ""), f"{cls.__name__} missing from the tree in the docstring"


def test_errors_imports_nothing_from_emospec():
    tree = ast.parse(Path(errors.__file__).read_text())
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    relative = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level > 0]
    assert not relative and not [m for m in imported if m.split(".")[0] == "emospec"]


def _import_graph(package_dir: Path = PACKAGE_DIR) -> dict:
    """``{module: {emospec modules it imports}}`` over every module of the package, lazy imports inside functions included."""
    modules = {}
    for path in package_dir.rglob("*.py"):
        parts = ("emospec", *path.relative_to(package_dir).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.split(".")[0] == "emospec"}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                if base.split(".")[0] == "emospec":  # `from . import audio` imports the module emospec.audio
                    found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
        graph[name] = found - {name}
    return graph


def _cycle(graph: dict) -> list:
    """One import cycle of ``graph`` as ``[a, b, ..., a]``, or ``[]``."""
    state: dict = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt]
            if nxt not in state and (found := visit(nxt, path + [node])):
                return found
        state[node] = "done"
        return []

    for start in sorted(graph):
        if start not in state and (found := visit(start, [])):
            return found
    return []


def test_the_cycle_finder_finds_cycles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_imports_flow_one_way():
    """audio -> features -> model -> train/protocols/predict/export -> cli/serve: no module imports, even lazily, one
    that imports it back, and only the CLI, the server and ``python -m emospec`` import the CLI or the server."""
    graph = _import_graph()
    assert {"emospec.features", "emospec.train", "emospec.epoch", "emospec.crosscorpus", "emospec.cli"} <= set(graph)
    assert "emospec.features" in graph["emospec.predict"] and "emospec.epoch" in graph["emospec.train"]
    assert _cycle(graph) == []
    top = ("emospec.cli", "emospec.serve")
    upward = {m: sorted(i for i in imports if i.startswith(top)) for m, imports in graph.items()
              if not m.startswith(top) and m != "emospec.__main__"}
    assert {m: i for m, i in upward.items() if i} == {}


def test_old_import_paths_still_work():
    from emospec.export import ExportError
    from emospec.serve.uploads import ApiError

    assert ExportError is errors.ExportError and ApiError is errors.ApiError
    e = errors.ApiError(413, "upload too large", "x.wav")
    assert (e.status, e.error, e.detail, str(e)) == (413, "upload too large", "x.wav", "upload too large: x.wav")


class _FakeReporter:
    def __init__(self, skipped: list):
        self.stats = {"skipped": skipped}
        self.lines: list = []

    def write_sep(self, sep: str, title: str, **markup) -> None:
        self.lines.append(title)


def _summary_lines(skip_reasons: list) -> list:
    reports = [type("Report", (), {"longrepr": ("tests/test_x.py", 1, f"Skipped: {r}")})() for r in skip_reasons]
    reporter = _FakeReporter(reports)
    hook = conftest.pytest_terminal_summary(reporter, 0, None)
    next(hook)  # the rest of the summary (e.g. the -ra skip list) is written here
    for _ in hook:
        pass
    return reporter.lines


def test_missing_chromium_ends_the_run_with_a_loud_line():
    reason = "Debian's chromium is not installed (apt-get install chromium)"
    lines = _summary_lines([reason] * 4 + ["real corpora not found"])
    assert len(lines) == 1 and lines[0].startswith("BROWSER TESTS SKIPPED (4): ")
    assert "/usr/bin/chromium" in lines[0] and "apt-get install chromium" in lines[0]
    assert _summary_lines(["real corpora not found"]) == [] and _summary_lines([]) == []
    assert (REPO / "tests" / "test_serve_browser.py").read_text().count(f'reason="{reason}"') == 1


def test_old_module_names_are_aliases_of_the_new_ones():
    """``emospec.cv`` and ``emospec.evaluate`` were renamed ``protocols`` and ``metrics``; the old names still import."""
    import emospec.bootstrap
    import emospec.cv
    import emospec.evaluate
    import emospec.metrics
    import emospec.protocols

    assert emospec.cv.run_protocol is emospec.protocols.run_protocol and emospec.cv.make_folds is emospec.protocols.make_folds
    assert emospec.evaluate.bootstrap_ci is emospec.bootstrap.bootstrap_ci and emospec.evaluate.report is emospec.metrics.report
