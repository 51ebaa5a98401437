"""The images built and run for real, with podman (tests/containers/engine.py).

docker/cpu/Dockerfile is built on a local Debian bookworm base (no registry is
reachable here) and run as users run it: no network, OUTPUT_DIR on a host folder,
`./run_model.sh --dummy`. The GPU images are built up to their "common" stage, the
steps they share with the CPU image; what needs their vendor libraries is listed in
docker/README.md as not built here. Needs root and apt-get (CI has both): podman,
runc and debootstrap are installed when missing. A cold run takes about 6 minutes
(debootstrap 1, CPU image 2, XPU common stage 2, runs 1); later runs reuse the base
and podman's layer cache."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time

import pytest

from containers import engine

pytestmark = [pytest.mark.slow, pytest.mark.network]  # the build installs from the package index
SMALL = {"DATA_HEIGHT": "64", "DATA_WIDTH": "64", "NUM_INPUTS": "5", "WARMUP": "1"}
UID = 1000  # the images' user, rife


@pytest.fixture(scope="session")
def base_image() -> str:
    reason = engine.unusable_reason()
    if reason:
        pytest.skip(reason)
    engine.install_tools()
    return engine.base_image(engine.cache_dir())


@pytest.fixture(scope="session")
def cpu_image(base_image, tmp_path_factory) -> str:
    """rifebench:cpu-test, built once per session; its build time and size are
    recorded in the cache folder (cpu-image.json) beside the base."""
    tag = "localhost/rifebench:cpu-test"
    seconds = engine.build("cpu", tag, base_image, tmp_path_factory.mktemp("build-cpu"))
    record = {
        "image": tag,
        "base": base_image,
        "build_s": round(seconds, 1),
        "size_bytes": engine.image_size(tag),
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (engine.cache_dir() / "cpu-image.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"\nbuilt {tag} in {seconds:.0f} s, {record['size_bytes'] / 1e6:.0f} MB")
    return tag


def run_dummy(
    image: str, output, env: dict, *options: str, owner: int | None = UID, expect: int = 0
) -> subprocess.CompletedProcess:
    output.mkdir(exist_ok=True)
    if owner is not None:
        os.chown(output, owner, owner)
    cmd = engine.run_command(image, output, env, *options)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=engine.env())
    assert proc.returncode == expect, f"{' '.join(cmd)}: exit {proc.returncode}\n{engine.tail(proc)}"
    return proc


def test_cpu_image_runs_the_dummy_benchmark_offline_as_its_user(cpu_image, tmp_path):
    """Into a root-owned host folder that podman's `:U` hands to the image's user, as
    docker/README.md offers podman users."""
    out = tmp_path / "out"
    out.mkdir()
    cmd = engine.run_command(cpu_image, out, SMALL, mount="U")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=engine.env())
    assert proc.returncode == 0, f"{' '.join(cmd)}: exit {proc.returncode}\n{engine.tail(proc)}"
    for name in ("results.yaml", "results.json"):
        info = (out / name).stat()
        assert info.st_uid == UID, f"{name} is owned by uid {info.st_uid}, not the image's user"
        assert info.st_mode & stat.S_IROTH, f"{name} is not readable by other users of the host"
    result = json.loads((out / "results.json").read_text())
    assert result["status"] == "passed" and result["exit_code"] == 0
    assert result["model"]["weights_path"] == "/opt/rifebench/model/rife-4.0/flownet.pkl"  # baked in
    container = result["system"]["container"]
    assert container["flavour"] == "cpu" and container["base_image"] == engine.BASE_IMAGE
    (engine.cache_dir() / "cpu-results.yaml").write_text((out / "results.yaml").read_text())
    print("\n" + (out / "results.yaml").read_text())


@pytest.mark.parametrize("sys_nice", [True, False], ids=["cap-sys-nice", "no-cap"])
def test_two_streams_pin_with_numactl_only_with_sys_nice(cpu_image, tmp_path, sys_nice):
    # Docker's seccomp rules: numactl's memory binding needs CAP_SYS_NICE there.
    profile = engine.docker_seccomp(tmp_path / "seccomp.json")
    options = ["--security-opt", f"seccomp={profile}"] + (["--cap-add", "SYS_NICE"] if sys_nice else [])
    proc = run_dummy(cpu_image, tmp_path / "out", {**SMALL, "STREAMS": "2"}, *options)
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [s["status"] for s in result["streams"]] == ["completed", "completed"]
    codes = [w["code"] for w in result["warnings"]]
    if sys_nice:
        assert result["pinning"]["method"] == "numactl" and "PIN_FALLBACK" not in codes
        assert "pinning by numactl" in proc.stdout + proc.stderr
    else:
        assert result["pinning"]["method"] == "affinity" and "PIN_FALLBACK" in codes
        said = proc.stdout + proc.stderr
        assert "[PIN_FALLBACK]" in said and "pinning by CPU affinity instead" in said
        assert "--cap-add SYS_NICE" in said  # the remedy tells a container user what to add


@pytest.mark.parametrize("flavour", ["cuda-gpu", "flex-gpu"])
def test_gpu_image_builds_up_to_its_vendor_steps(base_image, tmp_path, flavour):
    tag = f"localhost/rifebench:{flavour}-common-test"
    engine.build(flavour, tag, base_image, tmp_path, target="common")
    # The common stage ends with the weights fetched, verified and loaded once.
    proc = engine.podman("run", "--rm", "--network", "none", tag, "cat", "model/SHA256SUMS")
    assert "model/rife-4.0/flownet.pkl" in proc.stdout


def test_the_documented_run_works_for_another_user(cpu_image, tmp_path):
    """docker/README.md runs the image with --user "$(id -u):$(id -g)" -e HOME=/tmp:
    the results belong to whoever ran it, in a folder they own (root: the benchmark.sh
    test below, whose rows run with exactly these flags)."""
    out = tmp_path / "out"
    run_dummy(cpu_image, out, {**SMALL, "HOME": "/tmp"}, "--user", "4242:4242", owner=4242)
    assert (out / "results.json").stat().st_uid == 4242
    assert json.loads((out / "results.json").read_text())["status"] == "passed"


def test_a_folder_the_image_user_cannot_write_names_the_fix(cpu_image, tmp_path):
    """The copy-paste run as root without --user: the host folder is root's, the
    image's user is uid 1000. One line with both fixes, exit 2, nothing written."""
    out = tmp_path / "out"
    proc = run_dummy(cpu_image, out, SMALL, owner=0, expect=2)
    said = (proc.stdout + proc.stderr).strip().splitlines()
    assert "is not writable" in said[-1] and "uid 1000" in said[-1], said
    assert '--user "$(id -u):$(id -g)" -e HOME=/tmp' in said[-1] and ":U" in said[-1]
    assert not any(out.iterdir())


def test_benchmark_sh_runs_a_row_in_the_image_with_podman(cpu_image, tmp_path):
    profile = tmp_path / "p.csv"
    profile.write_text("PLATFORM,PRECISION,DATA_HEIGHT,DATA_WIDTH,NUM_INPUTS,WARMUP,DUMMY\ncpu,fp32,64,64,5,1,1\n")
    out = tmp_path / "bench"
    env = {**engine.env(), "IMAGE": cpu_image, "CONTAINER_ENGINE": "podman", "INVENTORY": "no"}
    env["DOCKER_ARGS"] = "--network none"
    proc = subprocess.run(
        [str(engine.REPO / "benchmark.sh"), "--profile", str(profile), "--output-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, engine.tail(proc)
    result = json.loads((out / "test_1" / "results.json").read_text())
    assert result["status"] == "passed" and result["system"]["container"]["flavour"] == "cpu"
    assert os.geteuid() == 0 == (out / "test_1" / "results.json").stat().st_uid  # --user "$(id -u):$(id -g)"
    assert json.loads((out / "sysinfo.json").read_text())["image"]["engine"] == "podman"
