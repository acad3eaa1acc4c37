"""The package as shipped: the ``py.typed`` marker, one exception tree in ``emospec.errors``, and the
test command's loud line when the browser tests cannot run."""

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
    import emospec.cv
    import emospec.evaluate
    import emospec.metrics
    import emospec.protocols

    assert emospec.cv.run_protocol is emospec.protocols.run_protocol and emospec.cv.make_folds is emospec.protocols.make_folds
    assert emospec.evaluate.bootstrap_ci is emospec.metrics.bootstrap_ci and emospec.evaluate.report is emospec.metrics.report
