"""The shape of the package: layers import only downwards, the tools (compare, study,
fleet) do not import one another, modules and functions stay small, the configuration
is typed from the option table; and the documentation (docs/): every warning code documented,
every package in its layout, the test tiers as pyproject declares them (tests/test_docs.py checks
that no page quotes a test count)."""

from __future__ import annotations

import ast
import dataclasses
import re
import tomllib
import typing
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "rifebench"

# Lowest first. A module may import its own layer and the layers before it.
LAYERS = [
    (
        "base",
        {
            "rifebench.errors",
            "rifebench.console",
            "rifebench.status",
            "rifebench.warning_codes",
            "rifebench.fsutil",
            "rifebench.paths",
            "rifebench",
        },
    ),
    ("measure", {"rifebench.measure"}),
    ("data", {"rifebench.data"}),
    ("backends", {"rifebench.backends"}),
    ("models", {"rifebench.models"}),
    ("runtimes", {"rifebench.runtimes"}),
    ("fetch", {"rifebench.fetch"}),
    ("config", {"rifebench.options", "rifebench.config"}),
    ("report", {"rifebench.report"}),
    ("compare", {"rifebench.compare"}),
    ("run", {"rifebench.run"}),
    ("bench", {"rifebench.bench"}),
    ("study", {"rifebench.study"}),
    ("tune", {"rifebench.tune"}),
    ("fleet", {"rifebench.fleet"}),
    ("cli", {"rifebench.__main__", "rifebench.docsgen"}),
]
MAX_FILE_LINES = 340
MAX_FUNCTION_LINES = 60


def layer_of(module: str) -> int:
    best, rank = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, rank = len(p), i
    return rank


def modules():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        yield name, path, ast.parse(path.read_text())


def imports(tree) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rifebench"):
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("rifebench")]
    return out


def test_layers_import_only_downwards():
    wrong = []
    for name, path, tree in modules():
        mine = layer_of(name)
        assert mine >= 0, f"{name} belongs to no layer: add it to LAYERS"
        for line, target in imports(tree):
            if target != "rifebench" and layer_of(target) > mine:
                wrong.append(
                    f"{path.relative_to(REPO)}:{line}: {LAYERS[mine][0]} imports {target} "
                    f"({LAYERS[layer_of(target)][0]})"
                )
    assert not wrong, "\n".join(wrong)


# The tools built on the run: each stands on the layers below it, never on another tool.
TOOLS = ("rifebench.compare", "rifebench.study", "rifebench.fleet")


def test_the_tools_do_not_import_each_other():
    wrong = []
    for name, path, tree in modules():
        mine = next((t for t in TOOLS if name == t or name.startswith(t + ".")), None)
        if mine is None:
            continue
        for line, target in imports(tree):
            other = next((t for t in TOOLS if t != mine and (target == t or target.startswith(t + "."))), None)
            if other:
                wrong.append(f"{path.relative_to(REPO)}:{line}: {mine} imports {other}")
    assert not wrong, "\n".join(wrong)


def test_the_launcher_never_imports_torch():
    """Device identity belongs to the backends: the process that watches the
    streams stays light."""
    tree = ast.parse((SRC / "run" / "launcher.py").read_text())
    assert not [m for _, m in imports(tree) if m.startswith("rifebench.backends") or m.startswith("rifebench.models")]
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "torch" not in names


def test_modules_and_functions_stay_small():
    long_files, long_functions = [], []
    for name, path, tree in modules():
        lines = len(path.read_text().splitlines())
        if lines > MAX_FILE_LINES:
            long_files.append(f"{name}: {lines} lines")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = node.end_lineno - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    long_functions.append(f"{name}.{node.name}: {size} lines")
    assert not long_files, long_files
    assert not long_functions, long_functions


def test_config_is_typed_from_the_option_table():
    from rifebench.config import PY_TYPES, Config, field_type, resolve
    from rifebench.options import OPTIONS

    fields = {f.name: f for f in dataclasses.fields(Config)}
    assert set(fields) == {o.name for o in OPTIONS} | {"origin"}
    for o in OPTIONS:
        declared = fields[o.name].type
        assert declared == field_type(o), o.name
        assert PY_TYPES[o.kind] in typing.get_args(declared) or declared is PY_TYPES[o.kind]
    cfg = resolve(["--dummy"], env={})
    assert dataclasses.is_dataclass(cfg) and cfg.batch_size == 1 and isinstance(cfg.scale, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.streams = 2
    with pytest.raises(TypeError, match=r"Config\.streams"):
        cfg.replace(streams="2")
    with pytest.raises(TypeError, match=r"Config\.dummy"):
        cfg.replace(dummy=1)


def test_every_warning_code_is_documented_and_well_formed():
    from rifebench.warning_codes import REGISTRY, UnknownWarning, markdown_table, warning

    page = (REPO / "docs" / "warnings.md").read_text()
    missing = [code for code in REGISTRY if f"`{code}`" not in page]
    assert not missing, f"docs/warnings.md lacks warning codes {missing}"
    assert markdown_table() in page, "docs/warnings.md is stale: run `python -m rifebench.docsgen`"
    for code, entry in REGISTRY.items():
        assert code.isupper() and entry.remedy and entry.level in ("warning", "note")
    w = warning("HOST_BOUND", busy_pct=41.0, what="GPU(s) [0] ran kernels", limit=70.0)
    assert w["code"] == "HOST_BOUND" and "41%" in w["message"] and "BATCH_SIZE" in w["remedy"]
    with pytest.raises(UnknownWarning):
        warning("NO_SUCH_CODE")


def test_one_status_enum_drives_the_exit_codes():
    from rifebench.status import Exit, Status, status_of_exit

    assert Status.PASSED.exit == Exit.PASS == 0 and Status.FAILED.exit == Exit.FAIL == 1
    assert Status.INTERRUPTED.exit == Exit.INTERRUPTED == 130 and Exit.USAGE == 2
    assert status_of_exit(0) is Status.PASSED and status_of_exit(130) is Status.INTERRUPTED
    assert status_of_exit(2) is Status.FAILED and status_of_exit(None) is Status.NOT_RUN
    assert str(Status.NOT_RUN) == "not run"
    literal = []
    for name, path, tree in modules():
        if name == "rifebench.status":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and any(
                isinstance(c, ast.Constant) and c.value == 130 for c in node.comparators
            ):
                literal.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not literal, f"exit status 130 compared as a literal: {literal}"


# --- the tests, laid out like src/ ---------------------------------------------------------


def test_test_files_have_unique_names_and_import_no_other_folder():
    """pytest imports every test file by its basename, so two equal names collide, and a test
    module of another folder imports only while that folder happens to be on sys.path
    (helpers.sibling_module imports one in any order)."""
    files = sorted((REPO / "tests").rglob("test_*.py"))
    names = [p.name for p in files]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
    folder_of = {p.stem: p.parent for p in files}
    wrong = []
    for path in files:
        for line, module in _plain_imports(ast.parse(path.read_text())):
            if module in folder_of and folder_of[module] != path.parent:
                wrong.append(f"{path.relative_to(REPO)}:{line}: imports {module} of {folder_of[module].name}/")
    assert not wrong, "\n".join(wrong)


def _plain_imports(tree) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return out


# --- the documentation --------------------------------------------------------------------


def docs_section(title: str, page: str = "docs/development.md") -> str:
    text = (REPO / page).read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def marker_table() -> str:
    """The documented table of test tiers, from pyproject's pytest markers."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    rows = ["| marker | a test so marked | leave them out with |", "|---|---|---|"]
    for entry in pyproject["tool"]["pytest"]["ini_options"]["markers"]:
        name, _, what = entry.partition(": ")
        rows.append(f'| `{name}` | {what} | `-m "not {name}"` |')
    return "\n".join(rows) + "\n"


def test_docs_marker_table_is_generated_from_pyproject():
    table = marker_table()
    assert table in docs_section("Tests"), f"docs/development.md test tiers are stale; paste:\n{table}"


def test_docs_tests_section_quotes_no_test_count():
    """How many tests a tier holds changes with every commit; pytest says it (--collect-only)."""
    counts = re.findall(r"\b\d[\d,]* (?:tests|passed|failed|skipped|deselected|selected)\b", docs_section("Tests"))
    assert not counts, counts


def test_docs_layout_names_every_package_and_test_folder():
    layout = docs_section("Layout")
    packages = sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").is_file())
    missing = [f"{p}/" for p in packages if f"  {p}/" not in layout]
    missing += [f"tests/{p}/" for p in packages if (REPO / "tests" / p).is_dir() and f"{p}/" not in layout]
    modules_ = sorted(p.name for p in SRC.glob("*.py"))
    missing += [m for m in modules_ if m not in layout]
    assert not missing, f"docs/development.md Layout lacks {missing}"


def test_changelog_has_this_version_and_its_schema():
    """A release names its version in CHANGELOG.md, and a results.json schema change names its version."""
    from rifebench.report.schema import SCHEMA_VERSION

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    changelog = (REPO / "CHANGELOG.md").read_text()
    entry = re.search(rf"^## {re.escape(version)} - \d{{4}}-\d{{2}}-\d{{2}}\n(.*?)(?=^## |\Z)", changelog, re.M | re.S)
    assert entry, f"CHANGELOG.md has no entry for version {version}"
    assert f'`schema_version` is `"{SCHEMA_VERSION}"`' in changelog
