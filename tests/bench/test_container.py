"""benchmark.sh with IMAGE: the engine (docker or podman, chosen or detected),
the image checked before anything runs, and the row's command line, with a
stand-in engine. The real images run with podman in tests/test_containers.py."""

from __future__ import annotations

import json
import os
import sys

import pytest
from test_benchmark import clean_env, read_summary, run_bench, write

from rifebench.bench import container
from rifebench.errors import UsageError

HOST_PATH = os.environ["PATH"]  # before any test narrows it
IMAGE = {"name": "rifebench:cuda", "engine": "docker", "id": "sha256:abc", "digest": "rifebench@sha256:def"}


def test_the_row_command_is_the_documented_line(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_ARGS", "--cpuset-cpus '0-3' --memory 8g")
    test_dir = tmp_path / "test_1"
    cmd = container.run_command(IMAGE, {"PRECISION": "fp16", "STREAMS": "2", "DUMMY": "1"}, test_dir, "cuda")
    assert cmd[:6] == ["docker", "run", "--rm", "--ipc=host", "--cap-add", "SYS_NICE"]
    joined = " ".join(cmd)
    assert "--gpus all" in joined and "/dev/dri" not in joined
    assert f"-v {test_dir}:/tmp/output" in joined and "-e OUTPUT_DIR=/tmp/output" in joined
    assert "-e PRECISION=fp16" in joined and "-e STREAMS=2" in joined and "-e DUMMY=1" in joined
    assert "-e RIFEBENCH_IMAGE_DIGEST=rifebench@sha256:def" in joined
    assert f"--user {os.getuid()}:{os.getgid()}" in joined
    assert cmd[-6:] == ["--cpuset-cpus", "0-3", "--memory", "8g", "rifebench:cuda", "./run_model.sh"]
    xpu = container.run_command(IMAGE, {"DATASET_DIR": str(tmp_path)}, test_dir, "xpu")
    assert "--device" in xpu and xpu[xpu.index("--device") + 1] == "/dev/dri" and "--gpus" not in xpu
    assert f"{tmp_path}:/data:ro" in xpu and "DATASET_DIR=/data" in xpu
    cpu = container.run_command(IMAGE, {}, test_dir, "cpu")
    assert "--gpus" not in cpu and "--device" not in cpu and "--ipc=host" in cpu


def test_podman_rows_use_podman_and_its_cdi_device_for_nvidia(tmp_path):
    cmd = container.run_command(IMAGE | {"engine": "podman"}, {}, tmp_path, "cuda")
    assert cmd[:2] == ["podman", "run"] and "--gpus" not in cmd
    assert cmd[cmd.index("--device") + 1] == "nvidia.com/gpu=all"


FAKE_ENGINE = r'''#!{python}
"""Stands in for an engine: answers `image inspect` as {engine} does (docker: one
object; podman: a list of one), prints a system description for the sysinfo run,
and for a row writes its argv into the mounted output folder and exits 3, as a
container that failed would."""
import json, sys
args = sys.argv[1:]
if args[:2] == ["image", "inspect"]:
    info = {{"Id": "sha256:1234", "RepoDigests": ["rifebench@sha256:5678"],
            "Config": {{"Labels": {{"org.opencontainers.image.title": "rifebench-cpu"}}}}}}
    print(json.dumps([info] if "{engine}" == "podman" else info))
    sys.exit(0)
if "rifebench.measure.sysinfo" in args:
    print(json.dumps({{"cpu_model": "inside the image", "packages": {{"torch": "2.13.0"}}}}))
    sys.exit(0)
mount = args[args.index("-v") + 1].split(":")[0]
with open(mount + "/engine-argv.json", "w") as f:
    json.dump(["{engine}", *args], f)
print("container: exiting with 3")
sys.exit(3)
'''


def engine_env(tmp_path, image: str, *engines: str, **extra) -> dict:
    """The environment of a benchmark whose engines are FAKE_ENGINE, with IMAGE set."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for name in engines:
        fake = bindir / name
        fake.write_text(FAKE_ENGINE.format(python=sys.executable, engine=name))
        fake.chmod(0o755)
    return clean_env(IMAGE=image, INVENTORY="no", PATH=f"{bindir}:{HOST_PATH}", **extra)


@pytest.mark.parametrize("engine", ["docker", "podman"])
def test_image_mode_runs_rows_through_the_engine(tmp_path, engine):
    prof = write(tmp_path / "p.csv", "PLATFORM,PRECISION,STREAMS\ncpu,fp32,1\ncpu,bf16,2\n")
    out = tmp_path / "out"
    env = engine_env(tmp_path, "rifebench:cpu", "docker", "podman", CONTAINER_ENGINE=engine)
    proc = run_bench("--profile", prof, "--output-dir", out, env=env, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    argv = json.loads((out / "test_2" / "engine-argv.json").read_text())
    assert argv[:6] == [engine, "run", "--rm", "--ipc=host", "--cap-add", "SYS_NICE"]
    assert argv[-2:] == ["rifebench:cpu", "./run_model.sh"]
    assert "PRECISION=bf16" in argv and "STREAMS=2" in argv and "RIFEBENCH_IMAGE_ID=sha256:1234" in argv
    rows = read_summary(out)
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert "exit status 3: container: exiting with 3" in rows[0]["reason"]
    system = json.loads((out / "sysinfo.json").read_text())
    assert system["cpu_model"] == "inside the image" and system["image"]["digest"] == "rifebench@sha256:5678"
    assert system["image"]["engine"] == engine
    assert "rifebench@sha256:5678" in (out / "summary.md").read_text()


def test_the_references_own_profile_runs_with_an_image(tmp_path):
    """Intel's profile format, unchanged, through IMAGE: model_name is a label
    (never passed to the container), the lower-case columns are variables."""
    prof = write(tmp_path / "ref.csv", "model_name,batch_size,num_inputs,streams,precision\nRIFE,1,1024,2,fp16\n")
    out = tmp_path / "out"
    env = engine_env(tmp_path, "rifebench:cuda", "docker")
    proc = run_bench("--profile", prof, "--output-dir", out, env=env, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the fake container exits 3
    argv = json.loads((out / "test_1" / "engine-argv.json").read_text())
    assert {"BATCH_SIZE=1", "NUM_INPUTS=1024", "STREAMS=2", "PRECISION=fp16"} <= set(argv)
    assert not [a for a in argv if a.upper().startswith("MODEL_NAME")]
    assert read_summary(out)[0]["model_name"] == "RIFE"


def test_the_engine_is_detected_docker_first_then_podman(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    monkeypatch.setenv("PATH", str(bindir))
    engine_env(tmp_path, "x", "podman")
    assert container.choose_engine(None) == "podman"
    engine_env(tmp_path, "x", "docker")
    assert container.choose_engine(None) == "docker"
    assert container.choose_engine("Podman") == "podman"


def test_a_bad_engine_is_refused_in_one_line_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no engine anywhere
    with pytest.raises(UsageError, match=r"--image/IMAGE: given but neither docker nor podman is on PATH"):
        container.choose_engine(None)
    with pytest.raises(UsageError, match=r"CONTAINER_ENGINE: 'lxc' is not a container engine \(accepted: docker, pod"):
        container.choose_engine("lxc")
    with pytest.raises(UsageError, match=r"CONTAINER_ENGINE: 'podman' is not on PATH \(accepted: .*none found"):
        container.choose_engine("podman")
    prof = write(tmp_path / "p.csv", "PLATFORM\ncpu\n")
    env = engine_env(tmp_path, "rifebench:cpu", "docker", CONTAINER_ENGINE="lxc")
    proc = run_bench("--profile", prof, "--output-dir", tmp_path / "out", env=env, timeout=120)
    assert proc.returncode == 2 and not (tmp_path / "out" / "test_1").exists()
    assert proc.stderr.strip().splitlines()[-1].startswith("benchmark.sh: error: --container-engine/CONTAINER_ENGINE")


def test_an_image_the_engine_does_not_have_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    fake = tmp_path / "podman"
    fake.write_text("#!/bin/sh\necho 'Error: rifebench:cpu: image not known' >&2\nexit 125\n")
    fake.chmod(0o755)
    with pytest.raises(UsageError, match=r"'rifebench:cpu' is not a local podman image \(Error: rifebench:cpu: image"):
        container.inspect_image("rifebench:cpu", "podman")
