"""`rifebench fleet k8s`: the Indexed Job manifest, validated offline against
the Kubernetes API schema (kubernetes-validate, strict: unknown fields fail)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import rifebench

REPO = Path(__file__).resolve().parents[2]
SRC = Path(rifebench.__file__).resolve().parents[1]  # the code under test, in subprocesses too
K8S_VERSION = "1.31"


def k8s(tmp_path: Path, profile_text: str, *args: str) -> subprocess.CompletedProcess:
    path = tmp_path / "p.csv"
    path.write_text(profile_text)
    env = dict(os.environ, PYTHONPATH=str(SRC))
    return subprocess.run(
        [sys.executable, "-m", "rifebench", "fleet", "k8s", str(path), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )


def validate(docs: list[dict]) -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is in requirements-dev.txt")
    for doc in docs:
        kv.validate(doc, K8S_VERSION, strict=True)


def test_cuda_manifest_is_a_valid_indexed_job(tmp_path):
    proc = k8s(
        tmp_path,
        "MODEL,PRECISION,STREAMS\n4.6,fp16,1\n4.6,fp16,2\n4.6,bf16,1\n",
        "--image",
        "registry.example/rifebench:cuda",
        "--replicas",
        "4",
        "--platform",
        "cuda",
        "--gpus",
        "2",
    )
    assert proc.returncode == 0, proc.stderr
    docs = list(yaml.safe_load_all(proc.stdout))
    validate(docs)
    config_map, job = docs
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == 12 and spec["parallelism"] == 4
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    wanted = {"cpu": "3", "memory": container["resources"]["limits"]["memory"], "nvidia.com/gpu": 2}  # STREAMS 2 + 1
    assert container["resources"] == {"requests": wanted, "limits": wanted}
    assert container["securityContext"]["capabilities"]["add"] == ["SYS_NICE"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in pod["volumes"]
    assert container["command"][-1] == "--completion-index"
    plan = json.loads(config_map["data"]["fleet.json"])
    assert plan["replicas"] == 4 and [r["env"]["STREAMS"] for r in plan["rows"]] == ["1", "2", "1"]


def test_intel_and_cpu_requests(tmp_path):
    proc = k8s(tmp_path, "PLATFORM,PRECISION\nFlex,fp16\n", "--image", "rifebench:xpu")
    assert proc.returncode == 0, proc.stderr
    docs = list(yaml.safe_load_all(proc.stdout))
    validate(docs)
    limits = docs[1]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["gpu.intel.com/i915"] == 1 and limits["cpu"] == "2"
    proc = k8s(tmp_path, "PLATFORM,STREAMS\ncpu,1\ncpu,2\n", "--image", "rifebench:cpu", "--namespace", "perf")
    docs = list(yaml.safe_load_all(proc.stdout))
    validate(docs)
    assert docs[1]["metadata"]["namespace"] == "perf"
    resources = docs[1]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"] == resources["limits"] and set(resources["limits"]) == {"cpu", "memory"}


def test_refusals_name_the_option(tmp_path, capsys):
    from rifebench.fleet.cli import main

    cases = [
        (("PLATFORM\ncuda\nxpu\n", "--image", "x"), "PLATFORM: the rows use cuda, xpu"),
        (("STREAMS\n1\n", "--image", "x"), "--platform: not given"),
        (("PLATFORM\ncpu\n", "--image", "x", "--name", "Bad_Name"), "--name: invalid value 'Bad_Name'"),
        (("PLATFORM\ncpu\n", "--image", "x;y"), "--image: invalid value 'x;y'"),
        (("PLATFORM\ncpu\n", "--image", "x", "--replicas", "0"), "--replicas: invalid value 0"),
    ]
    for (text, *args), message in cases:
        path = tmp_path / "p.csv"
        path.write_text(text)
        capsys.readouterr()
        code = main(["k8s", str(path), *args])
        err = capsys.readouterr().err
        assert code == 2 and message in err, (args, err)


@pytest.mark.slow
def test_pods_write_a_folder_fleet_report_reads(tmp_path):
    """What the Job's pods run, run here: the plan from the ConfigMap, the row from
    the completion index, the node from NODE_NAME; then the collected folder's report."""
    proc = k8s(
        tmp_path,
        "MODEL,NULL_MS,PLATFORM,DATA_HEIGHT,DATA_WIDTH,NUM_INPUTS,WARMUP\nnull,2,cpu,64,64,20,1\n",
        "--image",
        "rifebench:cpu",
        "--replicas",
        "2",
    )
    config_map = next(yaml.safe_load_all(proc.stdout))
    plan = tmp_path / "etc" / "fleet.json"
    plan.parent.mkdir()
    plan.write_text(config_map["data"]["fleet.json"])
    out = tmp_path / "output"
    for index, node in ((0, "node-a"), (1, "node-a")):  # the second replica landed on the same node
        env = dict(os.environ, PYTHONPATH=str(SRC), JOB_COMPLETION_INDEX=str(index), NODE_NAME=node)
        task = subprocess.run(
            [
                sys.executable,
                "-m",
                "rifebench.fleet.task",
                "--output-dir",
                str(out),
                "--plan",
                str(plan),
                "--completion-index",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert task.returncode == 0, task.stdout + task.stderr
    assert (out / "fleet.json").exists()
    assert sorted(p.name for p in (out / "node_node-a").iterdir()) == ["sysinfo.json", "test_1", "test_1.2"]
    env = dict(os.environ, PYTHONPATH=str(SRC))
    rep = subprocess.run(
        [sys.executable, "-m", "rifebench", "fleet", "report", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert rep.returncode == 0, rep.stdout + rep.stderr
    md = (out / "summary.md").read_text()
    assert "**Result: 2 of 2 cells passed**" in md and "| node-a#2 |" in md and "kubernetes job rifebench-fleet" in md


# --- nothing injected (issue 21, item 4) and bounded (item 17) ----------------------------

EVIL = "p.csv\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: evil}\nspec: {containers: [{name: x, image: evil}]}\n#"


def test_a_profile_name_cannot_inject_a_document(tmp_path):
    path = tmp_path / EVIL
    path.write_text("PLATFORM,STREAMS\ncpu,1\n")
    env = dict(os.environ, PYTHONPATH=str(SRC))
    cmd = [sys.executable, "-m", "rifebench", "fleet", "k8s", str(path), "--image", "rifebench:cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert proc.returncode == 2, proc.stdout
    (line,) = proc.stderr.splitlines()
    assert line.startswith("rifebench fleet: error: PROFILE: ") and "control character U+000A (accepted: " in line
    assert list(yaml.safe_load_all(proc.stdout)) == [] and "Pod" not in proc.stdout


def test_a_name_that_looks_like_yaml_stays_a_scalar(tmp_path):
    name = "p # x: y --- &a *b |.csv"
    (tmp_path / name).write_text("PLATFORM,STREAMS\ncpu,1\n")
    env = dict(os.environ, PYTHONPATH=str(SRC))
    cmd = [sys.executable, "-m", "rifebench", "fleet", "k8s", str(tmp_path / name), "--image", "rifebench:cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    docs = list(yaml.safe_load_all(proc.stdout))
    assert [d["kind"] for d in docs] == ["ConfigMap", "Job"]
    assert json.loads(docs[0]["data"]["fleet.json"])["profile"] == str(tmp_path / name)
    assert not [ln for ln in proc.stdout.splitlines() if ln.startswith("#") and "p # x" in ln]  # no name in comments


def test_every_string_reaching_the_manifest_is_printable(tmp_path, capsys):
    from rifebench.fleet.cli import main

    path = tmp_path / "p.csv"
    path.write_text("PLATFORM,model_name\ncpu,fast\x9bone\n", encoding="utf-8")  # C1 CSI: not a line break
    code = main(["k8s", str(path), "--image", "x"])
    err = capsys.readouterr().err
    assert code == 2 and "row 1, model_name: 'fast\\x9bone' holds the control character U+009B" in err, err
    assert len(err.splitlines()) == 1


def test_replicas_are_bounded(tmp_path, capsys):
    from rifebench.fleet.cli import main

    path = tmp_path / "p.csv"
    path.write_text("PLATFORM,STREAMS\ncpu,1\ncpu,2\n")
    code = main(["k8s", str(path), "--image", "x", "--replicas", "50001"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert "--replicas: 50001 is 50001 node(s); with 2 profile row(s) that is 100002 cells (accepted: at most" in err
    assert main(["k8s", str(path), "--image", "x", "--replicas", "50000"]) == 0


# --- Guaranteed pods, plain YAML, what parallelism does (issue 22 item 11) ---------------------


def test_pods_are_guaranteed_with_requests_equal_to_limits(tmp_path):
    """`resources: {}` made every pod BestEffort: the first evicted, throttled for its neighbours."""
    text = "PLATFORM,STREAMS,DATA_HEIGHT,DATA_WIDTH\ncpu,1,720,1280\ncpu,4,2160,3840\n"
    proc = k8s(tmp_path, text, "--image", "rifebench:cpu")
    assert proc.returncode == 0, proc.stderr
    resources = list(yaml.safe_load_all(proc.stdout))[1]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"] == resources["limits"]
    memory = resources["limits"]["memory"]
    assert resources["limits"]["cpu"] == "5" and memory.endswith("Mi")  # the largest row: 4 streams + 1
    from rifebench.config import resolve
    from rifebench.run.memory import estimate

    row = {"PLATFORM": "cpu", "STREAMS": "4", "DATA_HEIGHT": "2160", "DATA_WIDTH": "3840", "DUMMY": "1"}
    needed = estimate(resolve([], env=row))
    assert int(memory[:-2]) * 2**20 >= needed.total_bytes * 1.25 + 512 * 2**20  # the run's own estimate, + headroom
    assert "each pod requests and is limited to 5 CPU(s) and " + memory in proc.stderr
    proc = k8s(tmp_path, text, "--image", "rifebench:cpu", "--cpus", "32", "--memory", "64Gi")
    resources = list(yaml.safe_load_all(proc.stdout))[1]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources == {"requests": {"cpu": "32", "memory": "64Gi"}, "limits": {"cpu": "32", "memory": "64Gi"}}
    validate(list(yaml.safe_load_all(proc.stdout)))


def test_the_manifest_is_plain_yaml(tmp_path):
    """The ConfigMap held the plan as one escaped JSON string ("{\\n  \\"rows\\"...") and the
    documents shared their metadata through anchors (&id001 / *id001)."""
    proc = k8s(tmp_path, "PLATFORM,STREAMS\ncpu,1\ncpu,2\n", "--image", "rifebench:cpu")
    assert proc.returncode == 0, proc.stderr
    events = list(yaml.parse(proc.stdout))
    assert not [e for e in events if isinstance(e, yaml.AliasEvent) or getattr(e, "anchor", None)]
    assert "&id" not in proc.stdout and "*id" not in proc.stdout
    config_map = next(iter(yaml.compose_all(proc.stdout)))
    data = next(v for k, v in config_map.value if k.value == "data")
    (plan_node,) = [v for k, v in data.value if k.value == "fleet.json"]
    assert plan_node.style == "|"  # a literal block: the JSON reads as written
    assert '  fleet.json: |\n    {\n      "rows": [' in proc.stdout and '\\"' not in proc.stdout
    docs = list(yaml.safe_load_all(proc.stdout))
    assert json.loads(docs[0]["data"]["fleet.json"])["rows"][1]["env"]["STREAMS"] == "2"
    assert docs[0]["metadata"] == docs[1]["metadata"]


def test_the_manifest_says_replicas_of_a_row_do_not_run_together(tmp_path):
    proc = k8s(tmp_path, "PLATFORM,STREAMS\ncpu,1\ncpu,2\n", "--image", "rifebench:cpu", "--replicas", "3")
    assert proc.returncode == 0, proc.stderr
    assert (
        "parallelism = replicas does not keep one row's replicas together: the Job starts the next completion "
        "index as soon as any pod ends" in proc.stderr
    )
    assert "# Pods request what they are limited to (Guaranteed QoS). One row's replicas are not\n" in proc.stdout
    helped = subprocess.run(
        [sys.executable, "-m", "rifebench", "fleet", "k8s", "--help"],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(SRC)),
        timeout=60,
    )
    assert "does not keep one row's replicas together" in " ".join(helped.stdout.split())


def test_bad_pod_sizes_are_refused(tmp_path, capsys):
    from rifebench.fleet.cli import main

    path = tmp_path / "p.csv"
    path.write_text("PLATFORM\ncpu\n")
    for flag, value, words in (
        ("--cpus", "0", "--cpus: invalid value 0 (accepted: 1 to 4096)"),
        ("--memory", "16G", "--memory: invalid value '16G' (accepted: a Kubernetes quantity in Mi, Gi or Ti"),
        ("--memory", "1Gi\n---", "'1Gi\\n---' holds the control character U+000A"),
    ):
        capsys.readouterr()
        assert main(["k8s", str(path), "--image", "x", flag, value]) == 2
        out, err = capsys.readouterr()
        assert out == "" and words in err and len(err.splitlines()) == 1, err
