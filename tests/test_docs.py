"""The documentation: README.md is a front page that fits on a screen and links into docs/, which
builds as a MkDocs site with --strict; every page is in the nav, the generated pages (options,
warnings) are current, every README link leads to a file and heading that exist, and no paragraph
is written twice."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import yaml

from rifebench import docsgen

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = REPO / "README.md"
README_MAX_LINES = 250
# Files of the repository that are pages of the site as they are (pymdownx.snippets includes them).
INCLUDED = {"profiles.md": REPO / "profiles" / "README.md", "containers.md": REPO / "docker" / "README.md"}
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def mkdocs_config() -> dict:
    """mkdocs.yml, with its `!!python/name:` tags read as plain strings (no code imported)."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("tag:yaml.org,2002:python/name:", lambda loader, suffix, node: suffix)
    return yaml.load((REPO / "mkdocs.yml").read_text(), Loader=Loader)


def nav_pages(nav) -> list[str]:
    out: list[str] = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        out += nav_pages(value) if isinstance(value, list) else [value]
    return out


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def prose_files() -> list[Path]:
    """Every markdown file a reader of the site or the repository reads as documentation."""
    own = [p for p in pages() if p.name not in INCLUDED]
    return [README, *own, *INCLUDED.values()]


def slug(heading: str) -> str:
    """A heading's anchor as MkDocs' toc writes it (GitHub agrees for plain headings)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def outside_code(text: str) -> list[str]:
    """The lines of a markdown text that are not inside a fenced code block."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def anchors(path: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in outside_code(path.read_text()) if re.match(r"#{1,6} ", line)}


# --- the front page ----------------------------------------------------------------------------


def test_readme_fits_on_a_screen():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES}): move detail to docs/"


def test_readme_quick_start_keeps_its_two_commands_first():
    text = README.read_text()
    quick = text[text.index("\n## Quick start\n") :]
    block = quick[quick.index("```bash\n") : quick.index("\n```", quick.index("```bash\n"))]
    commands = [line.split("#")[0].strip() for line in block.splitlines()[1:]]
    assert commands == ["./run_model.sh --dummy", "./setup.sh --dev && .venv/bin/python -m pytest"]
    assert re.findall(r"^## (.+)$", text, flags=re.M)[0] == "Quick start"


def test_readme_timing_promise_says_what_it_depends_on():
    quick = README.read_text().split("\n## Quick start\n")[1].split("\n## ")[0]
    promise = " ".join(quick.split())
    assert "depends on the machine" in promise and "frame size" in promise and "the model" in promise
    assert "docs/figures.md#the-quick-start" in promise


def test_readme_links_lead_to_files_and_headings():
    broken = []
    for target in LINK.findall(README.read_text()):
        if re.match(r"[a-z]+:", target):  # https://, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (REPO / path).resolve() if path else README
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and (file.is_dir() or anchor not in anchors(file)):
            broken.append(f"{target}: {path} has no heading #{anchor}")
    assert not broken, broken


def test_readme_links_every_page_of_the_site():
    linked = {(REPO / t.partition("#")[0]).resolve() for t in LINK.findall(README.read_text()) if ":" not in t}
    missing = []
    for page in pages():
        source = INCLUDED.get(page.name, page)
        if source.resolve() not in linked and not (page.name == "index.md" and DOCS.resolve() in linked):
            missing.append(page.name)
    assert not missing, f"README.md does not link {missing}"


# --- the site ----------------------------------------------------------------------------------


def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page():
    nav = nav_pages(mkdocs_config()["nav"])
    on_disk = [str(p.relative_to(DOCS)) for p in pages()]
    assert sorted(nav) == sorted(set(nav)), "a page is in the nav twice"
    assert sorted(nav) == on_disk, f"not in the nav: {set(on_disk) - set(nav)}; missing: {set(nav) - set(on_disk)}"


def test_included_pages_are_the_repository_files():
    for name, source in INCLUDED.items():
        text = (DOCS / name).read_text()
        assert f'--8<-- "{source.relative_to(REPO)}"' in text and source.is_file(), name


def test_generated_pages_are_current():
    stale = docsgen.stale_pages(DOCS)
    assert not stale, f"stale generated pages {stale}: run `{docsgen.COMMAND}`"


def test_docsgen_writes_stale_pages_and_checks_them(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    assert docsgen.main(["--docs-dir", str(docs), "--check"]) == 1
    assert "options.md is stale" in capsys.readouterr().err
    assert docsgen.main(["--docs-dir", str(docs)]) == 0
    assert docsgen.stale_pages(docs) == []
    (docs / "warnings.md").write_text("# Warnings\n")
    assert docsgen.stale_pages(docs) == ["warnings.md"]
    assert docsgen.main(["--docs-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--docs-dir" in err and "nowhere" in err


def test_results_page_names_every_top_level_key_of_results_json():
    import dataclasses

    from rifebench.report.schema import RunResult

    text = (DOCS / "results.md").read_text()
    keys = [f.name for f in dataclasses.fields(RunResult) if f.name not in ("extra", "path")]
    missing = [k for k in keys if f"`{k}`" not in text]
    assert not missing, f"docs/results.md does not describe {missing}"


def paragraphs(path: Path) -> list[str]:
    """Prose paragraphs and list items of a markdown file, whitespace-normalised (no code, tables or
    headings)."""
    out, current = [], []
    for line in [*outside_code(path.read_text()), ""]:
        starts_item = re.match(r"\s*(- |\d+\. )", line)
        if not line.strip() or line.lstrip().startswith(("|", "#", "<!--", "--8<--")) or starts_item:
            if current:
                out.append(" ".join(" ".join(current).split()))
            current = [line] if starts_item else []
        else:
            current.append(line)
    return [p for p in out if len(p) >= 80]


def test_no_paragraph_is_written_twice():
    seen: dict[str, str] = {}
    twice = []
    for path in prose_files():
        for para in paragraphs(path):
            where = str(path.relative_to(REPO))
            if para in seen:
                twice.append(f"{seen[para]} and {where}: {para[:80]}...")
            seen.setdefault(para, where)
    assert not twice, "\n".join(twice)


def test_no_page_quotes_a_test_count():
    """How many tests a tier holds changes with every commit; pytest says it (--collect-only)."""
    pattern = r"\b\d[\d,]* (?:tests|passed|failed|skipped|deselected|selected)\b"
    counts = {str(p.relative_to(REPO)): re.findall(pattern, p.read_text()) for p in prose_files()}
    assert not {k: v for k, v in counts.items() if v}


def test_mkdocs_builds_the_site_strictly(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed: pip install -e '.[docs]' (./setup.sh --dev installs it)")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(REPO / "mkdocs.yml")]
    # From the repository root: the included pages' paths are relative to it.
    proc = subprocess.run(
        [*cmd, "--site-dir", str(site)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for page in pages():
        name = page.relative_to(DOCS).with_suffix("")
        html = site / ("index.html" if name.name == "index" else f"{name}/index.html")
        assert html.is_file(), html
    for name, source in INCLUDED.items():  # the repository's own files, included
        title = next(line[2:] for line in source.read_text().splitlines() if line.startswith("# "))
        assert title in (site / Path(name).stem / "index.html").read_text(), name
    assert '<pre class="mermaid">' in (site / "measurement" / "index.html").read_text()
