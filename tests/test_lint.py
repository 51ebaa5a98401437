"""Linters and the container recipes. No Docker engine runs on our machines, so
every Dockerfile is linted with hadolint and read for what it must do: build the
environment with the same setup.sh and fetch weights with the same get_model.sh
as bare metal, pin its base image, run as a non-root user, carry OCI labels.
Every shell script of the repository goes through shellcheck. The Python checks
(ruff, mypy) are the same in .ci/run and .pre-commit-config.yaml, and every
suppression of one of them says why.

hadolint and shellcheck come from pyproject's "test" extra (`./setup.sh --dev`)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest
import yaml

from rifebench.models import zoo

REPO = Path(__file__).resolve().parents[1]
FLAVOURS = ("cpu", "cuda-gpu", "flex-gpu")
SKIP_DIRS = {".git", ".venv", "output", "model", "build", "node_modules", ".pytest_cache"}


def linter(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (pip install -r requirements-dev.txt, or ./setup.sh --dev)")
    return found


def shell_scripts() -> list[Path]:
    return sorted(p for p in REPO.rglob("*.sh") if not SKIP_DIRS & set(p.relative_to(REPO).parts))


def dockerfile(flavour: str) -> str:
    return (REPO / "docker" / flavour / "Dockerfile").read_text()


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_every_shell_script_passes_shellcheck():
    scripts = shell_scripts()
    assert {"run_model.sh", "setup.sh", "get_model.sh", "benchmark.sh"} <= {p.name for p in scripts}
    proc = subprocess.run([linter("shellcheck"), "--format=gcc", *map(str, scripts)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_dockerfile_passes_hadolint(flavour):
    path = REPO / "docker" / flavour / "Dockerfile"
    proc = subprocess.run([linter("hadolint"), "--no-color", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_image_builds_like_bare_metal(flavour):
    steps = instructions(dockerfile(flavour))
    runs = [args for word, args in steps if word == "RUN"]
    copied = " ".join(args for word, args in steps if word == "COPY")
    for name in ("setup.sh", "get_model.sh", "run_model.sh", "requirements.txt", "pyproject.toml", "src"):
        assert re.search(rf"(^|\s){re.escape(name)}(\s|$)", copied), f"{flavour}: {name} is not copied"
    # The environment comes from setup.sh (TORCH_SPEC picks the torch build), never from a pip line of its own.
    assert any(re.search(r"TORCH_SPEC=\S+ \./setup\.sh", r) for r in runs), flavour
    assert not any("pip install" in r or "pip3 install" in r for r in runs), flavour
    # The weights come from get_model.sh at build time; 4.0 is also pinned to the zoo's sha256.
    fetch = next(r for r in runs if "./get_model.sh" in r)
    assert 'for m in 4.0 ${EXTRA_MODELS}; do ./get_model.sh --model "$m"; done' in fetch
    assert f"{zoo.get('4.0').sha256}  model/rife-4.0/flownet.pkl" in fetch and "sha256sum -c -" in fetch
    # ... and an offline dummy run per model proves the image runs without a network.
    assert './run_model.sh --dummy --model "$m" --platform cpu' in fetch
    # Every file it copies exists, so the build context is complete.
    for src in re.findall(
        r"COPY --chown=\S+ (.+?) \./?\S*$", "\n".join(f"COPY {a}" for w, a in steps if w == "COPY"), flags=re.M
    ):
        for name in src.split():
            assert (REPO / name).exists(), f"{flavour}: COPY {name}: missing from the repository"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_image_is_pinned_labelled_and_non_root(flavour):
    steps = instructions(dockerfile(flavour))
    # The base is a build argument (a site's mirror, CI's local base) whose default is pinned;
    # stage "common" holds the steps CI builds for every image (tests/test_containers.py).
    word, arg = steps[0]
    assert word == "ARG" and arg.startswith("BASE_IMAGE="), f"{flavour}: no ARG BASE_IMAGE before FROM"
    _, _, tag = arg.partition("=")[2].strip('"').partition(":")
    assert tag and tag != "latest" and re.search(r"\d+\.\d+", tag), f"{flavour}: base {arg} is not pinned"
    assert [args for word, args in steps if word == "FROM"] == ["${BASE_IMAGE} AS common", "common"]
    labels = " ".join(args for word, args in steps if word == "LABEL")
    for key in ("title", "description", "version", "revision", "created", "licenses", "base.name"):
        assert f"org.opencontainers.image.{key}=" in labels, f"{flavour}: label {key} missing"
    assert 'org.opencontainers.image.base.name="${BASE_IMAGE}"' in labels  # names the base actually used
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), f"{flavour}: runs as root"
    last_user = max(i for i, (w, _) in enumerate(steps) if w == "USER")
    assert all("apt-get" not in a for w, a in steps[last_user:] if w == "RUN")
    env = " ".join(args for word, args in steps if word == "ENV")
    assert "OUTPUT_DIR=/tmp/output" in env and "RIFEBENCH_BASE_IMAGE=${BASE_IMAGE}" in env
    assert steps[-1] == ("CMD", '["./run_model.sh", "--dummy"]')


def test_gpu_images_carry_the_study_model_and_the_xpu_image_one_stack():
    for flavour in ("cuda-gpu", "flex-gpu"):
        assert 'ARG EXTRA_MODELS="4.6"' in dockerfile(flavour)
    flex = dockerfile("flex-gpu")
    # PyTorch's own XPU wheels on a plain base: no IPEX base image, no IPEX wheel beside them.
    steps = instructions(flex)
    spec = next(a for w, a in steps if w == "ARG" and a.startswith("TORCH_SPEC="))
    assert "download.pytorch.org/whl/xpu" in spec and "intel-extension-for-pytorch" not in spec
    assert not any(w == "FROM" and "intel-extension-for-pytorch" in a for w, a in steps)
    assert "IPEX=no" in " ".join(a for w, a in steps if w == "ENV")
    assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in dockerfile("cuda-gpu")


def test_dockerignore_keeps_local_state_out():
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "model", "output"} <= ignored
    for flavour in FLAVOURS:  # nothing an image copies is ignored
        for word, args in instructions(dockerfile(flavour)):
            if word == "COPY":
                assert not set(args.split()[1:-1]) & ignored


def test_readme_gives_the_build_and_run_lines():
    text = (REPO / "docker" / "README.md").read_text()
    for flavour in FLAVOURS:
        assert f"docker build -f docker/{flavour}/Dockerfile" in text
    runs = re.findall(r"^docker run .*?(?=\n\n|\n#|\n```)", text, flags=re.M | re.S)
    assert len(runs) == 3
    for run, device in zip(runs, ("", "--gpus all", "--device /dev/dri"), strict=True):
        flat = " ".join(run.replace("\\\n", " ").split())
        assert "--ipc=host --cap-add SYS_NICE" in flat and device in flat
        assert "-e OUTPUT_DIR=/tmp/output -v /tmp/output:/tmp/output" in flat
        assert flat.endswith("./run_model.sh --dummy")


# --- the Python checks -------------------------------------------------------------------


def ci_checks() -> tuple[list[str], str]:
    """.ci/run's check commands in order, and its test command (the last line)."""
    lines = [ln.strip() for ln in (REPO / ".ci" / "run").read_text().splitlines()]
    commands = [ln for ln in lines if ln.startswith(".venv/bin/")]
    return commands[:-1], commands[-1]


def test_ci_and_pre_commit_run_the_same_checks_before_the_tests():
    checks, tests = ci_checks()
    assert tests == ".venv/bin/python -m pytest"  # the README's test command, after the checks
    assert "./setup.sh --dev && .venv/bin/python -m pytest" in (REPO / "README.md").read_text()
    assert checks == [
        ".venv/bin/ruff check src tests",
        ".venv/bin/ruff format --check src tests",
        ".venv/bin/mypy",
    ]
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    [repo] = config["repos"]
    assert repo["repo"] == "local"  # nothing to download: the tools of .venv
    hooks = repo["hooks"]
    assert [h["entry"] for h in hooks] == checks
    assert all(h["language"] == "system" and h["pass_filenames"] is False for h in hooks)


NOQA = re.compile(r"#\s*noqa\b(?P<rest>.*)")
NOQA_WITH_REASON = re.compile(r":\s*[A-Z]+[0-9]+(\s*,\s*[A-Z]+[0-9]+)*\s+-\s+\S")
TYPE_IGNORE = re.compile(r"#\s*type:\s*ignore(?P<rest>.*)")
TYPE_IGNORE_WITH_REASON = re.compile(r"\[[a-z-]+(,\s*[a-z-]+)*\]\s+#\s*\S")


def comments(path: Path) -> list[tuple[int, str]]:
    with path.open("rb") as f:
        return [(t.start[0], t.string) for t in tokenize.tokenize(f.readline) if t.type == tokenize.COMMENT]


def test_every_suppression_names_its_codes_and_says_why():
    """noqa as `CODE - why`, type-ignore as `[code]` then a comment saying why: a bare one hides every finding."""
    bare = []
    for path in sorted([*(REPO / "src").rglob("*.py"), *(REPO / "tests").rglob("*.py")]):
        for number, comment in comments(path):
            for pattern, reason in ((NOQA, NOQA_WITH_REASON), (TYPE_IGNORE, TYPE_IGNORE_WITH_REASON)):
                found = pattern.search(comment)
                if found and not reason.match(found["rest"]):
                    bare.append(f"{path.relative_to(REPO)}:{number}: {comment}")
    assert not bare, "\n".join(bare)
