"""`rifebench fleet k8s`: a profile as a Kubernetes Indexed Job manifest, rendered
without a cluster.

Two documents: a ConfigMap holding the plan (fleet.json: the rows' variables,
so no cell reaches a command line) and an Indexed Job with one completion index
per (row, replica): index i runs row i // replicas + 1, `--replicas` pods at a
time. A required pod anti-affinity on the node name keeps two of this
Job's pods off one node at a time (they would measure each other). The docker
lines' needs in Kubernetes terms: --ipc=host (the streams' shared memory) is a
memory-backed emptyDir on /dev/shm, --cap-add SYS_NICE (numactl) a capability
added in the securityContext. Every pod requests what it is limited to (CPUs,
memory, and GPUs as nvidia.com/gpu or gpu.intel.com/i915): the Guaranteed QoS
class, sized from the largest row (fleet/k8s_resources.py). parallelism =
replicas does not keep one row's replicas together: the Job starts the next
index as soon as any pod ends (TOGETHER, said on the console, in the manifest
and in --help). The results go to a PersistentVolumeClaim at
/output, laid out as a Slurm fleet's folder (node_<node>/test_<row>/), so
`rifebench fleet report` reads the collected folder the same way.

The YAML is plain: no anchors or aliases (each document carries its own
metadata), the plan a literal block (JSON as written, not an escaped string).
No user string reaches the manifest except as a scalar the YAML library writes
(the header comment holds only counts), and every one of them (the profile's
name, its cells, the rows' variables, the command line) is refused when it holds
a control character or a line break: one line, exit 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import unicodedata
from typing import Any

from rifebench.console import log
from rifebench.errors import UsageError
from rifebench.fleet import k8s_resources
from rifebench.fleet.k8s_resources import PodSize
from rifebench.fleet.records import FleetPlan
from rifebench.fleet.slurm import check_cells
from rifebench.options import BY_ENV

OUTPUT, PLAN_MOUNT = "/output", "/etc/rifebench"
DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
IMAGE = r"[A-Za-z0-9][A-Za-z0-9._/:@-]*"
UID = 1000  # the images' user (docker/*/Dockerfile)
PROG = "rifebench fleet k8s"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Print a Kubernetes Indexed Job (and the ConfigMap of its plan) that runs the profile's rows on "
        "--replicas nodes each. Every pod requests what it is limited to (Guaranteed QoS): CPUs, memory "
        f"and GPUs. Note: {TOGETHER}."
    )
    p.add_argument("profile", metavar="PROFILE", help="a CSV profile (profiles/README.md)")
    p.add_argument("--image", required=True, help="the rifebench image every pod runs (docker/README.md)")
    p.add_argument("--replicas", type=int, default=1, help="nodes per row: pods of each row (default 1)")
    p.add_argument("--name", default="rifebench-fleet", help="the Job's and ConfigMap's name (a DNS label)")
    p.add_argument("--namespace", help="the namespace (default: the context's)")
    p.add_argument(
        "--platform",
        choices=("cpu", "cuda", "xpu"),
        help="the GPU resource to request when the profile's PLATFORM is auto or unset",
    )
    p.add_argument("--gpus", type=int, default=1, help="GPUs per pod on cuda/xpu (default 1)")
    p.add_argument("--volume-claim", default="rifebench-output", help="the PersistentVolumeClaim for /output")
    k8s_resources.add_arguments(p)


def platform_of(plan: FleetPlan, override: str | None) -> str:
    """One platform for the Job's single pod template."""
    found = {BY_ENV["PLATFORM"].parse(r.env.get("PLATFORM", "auto"), "env") for r in plan.rows}
    found.discard("auto")
    if len(found) > 1:
        raise UsageError(
            f"PLATFORM: the rows use {', '.join(sorted(found))} (accepted: one platform per "
            "Kubernetes Job; split the profile)"
        )
    if found and override and override not in found:
        raise UsageError(f"--platform: {override!r} but the profile's rows say {found.pop()!r} (accepted: the same)")
    if not found and not override:
        raise UsageError(
            "--platform: not given and the profile's PLATFORM is auto (accepted: cpu, cuda or xpu, "
            "which sets the GPU resource the pods request)"
        )
    return override or found.pop()


def check_printable(where: str, value: str) -> None:
    """UsageError when value holds a control character (Cc) or a Unicode line break."""
    bad = next((c for c in value if unicodedata.category(c) in ("Cc", "Zl", "Zp")), None)
    if bad is not None:
        raise UsageError(
            f"{where}: {value!r} holds the control character U+{ord(bad):04X} "
            "(accepted: text without control characters or line breaks)"
        )


def check_plan_text(plan: FleetPlan) -> None:
    """Every string of the plan that the manifest carries: printable, one line."""
    for row in plan.rows:
        for key, value in (*row.cells.items(), *row.env.items()):
            check_printable(f"PROFILE {plan.profile!r}: row {row.row}, a variable's name", key)
            check_printable(f"PROFILE {plan.profile!r}: row {row.row}, {key}", value)
    for name in plan.header:
        check_printable(f"PROFILE {plan.profile!r}: header", name)
    for word in plan.command:
        check_printable("the command line", word)


def check(args: argparse.Namespace) -> None:
    check_printable("PROFILE", args.profile)
    for flag, value, pattern in (
        ("--name", args.name, DNS_LABEL),
        ("--namespace", args.namespace, DNS_LABEL),
        ("--volume-claim", args.volume_claim, DNS_LABEL),
        ("--image", args.image, IMAGE),
    ):
        if value is not None and not re.fullmatch(pattern, value):
            raise UsageError(
                f"{flag}: invalid value {value!r} (accepted: "
                f"{'an image reference' if flag == '--image' else 'a lower-case DNS label'})"
            )
    for flag, value in (("--replicas", args.replicas), ("--gpus", args.gpus)):
        if value < 1:
            raise UsageError(f"{flag}: invalid value {value} (accepted: 1 or more)")


def documents(args: argparse.Namespace, plan: FleetPlan, size: PodSize) -> list[dict[str, Any]]:
    check_cells("--replicas", args.replicas, args.replicas, len(plan.rows))
    platform = platform_of(plan, args.platform)
    plan = dataclasses.replace(
        plan,
        replicas=args.replicas,
        nodes=[],
        node_count=args.replicas,
        scheduler={
            "kind": "kubernetes",
            "job_id": args.name,
            "image": args.image,
            "args": [
                f"completions={len(plan.rows) * args.replicas}",
                f"parallelism={args.replicas}",
                f"platform={platform}",
            ],
        },
    )
    meta: dict[str, Any] = {
        "name": args.name,
        "labels": {"app.kubernetes.io/name": "rifebench", "rifebench/fleet": args.name},
    }
    if args.namespace:
        meta["namespace"] = args.namespace
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": {"fleet.json": json.dumps(plan.to_dict(), indent=2) + "\n"},
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "completionMode": "Indexed",
            "completions": len(plan.rows) * args.replicas,
            "parallelism": args.replicas,
            "backoffLimitPerIndex": 0,
            "maxFailedIndexes": len(plan.rows) * args.replicas,
            "template": pod_template(args, platform, meta, size),
        },
    }
    return [config_map, job]


def pod_template(args: argparse.Namespace, platform: str, meta: dict[str, Any], size: PodSize) -> dict[str, Any]:
    container = {
        "name": "rifebench",
        "image": args.image,
        "workingDir": "/opt/rifebench",
        "command": [
            ".venv/bin/python",
            "-m",
            "rifebench.fleet.task",
            "--output-dir",
            OUTPUT,
            "--plan",
            f"{PLAN_MOUNT}/fleet.json",
            "--completion-index",
        ],
        "env": [
            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "HOME", "value": "/tmp"},
        ],
        "resources": size.resources(platform, args.gpus),
        "securityContext": {"capabilities": {"add": ["SYS_NICE"]}, "allowPrivilegeEscalation": False},
        "volumeMounts": [
            {"name": "output", "mountPath": OUTPUT},
            {"name": "plan", "mountPath": PLAN_MOUNT},
            {"name": "dshm", "mountPath": "/dev/shm"},
        ],
    }
    labels = {"rifebench/fleet": meta["name"]}
    spread = {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}
        ]
    }
    return {
        "metadata": {"labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "containers": [container],
            "affinity": {"podAntiAffinity": spread},
            "securityContext": {"runAsUser": UID, "runAsGroup": UID, "fsGroup": UID},
            "volumes": [
                {"name": "output", "persistentVolumeClaim": {"claimName": args.volume_claim}},
                {"name": "plan", "configMap": {"name": meta["name"]}},
                {"name": "dshm", "emptyDir": {"medium": "Memory"}},
            ],
        },
    }


TOGETHER = (
    "parallelism = replicas does not keep one row's replicas together: the Job starts the next completion "
    "index as soon as any pod ends, so a row's pods may start at different times and run beside the next "
    "row's (on other nodes); to measure a row on every node at once, make one Job per row (a one-row profile "
    "each) or use `fleet submit` (Slurm)"
)


def manifest(args: argparse.Namespace, plan: FleetPlan) -> str:
    """The two documents in plain YAML (no anchors, the plan as a literal block),
    written by the YAML library; the notes go to the console."""
    import yaml

    check(args)
    check_plan_text(plan)  # every string, before any reaches a document
    size = k8s_resources.pod_size(args, plan)
    docs = documents(args, plan, size)
    log(f"{PROG}: each pod requests and is limited to {size.cpus} CPU(s) and {size.memory} ({size.why})", stderr=True)
    log(f"{PROG}: {TOGETHER}", stderr=True)  # stdout is the manifest
    head = (  # counts and fixed text only: a user string in a comment could end the comment and start a document
        f"# rifebench fleet: {len(plan.rows)} row(s) x {args.replicas} replica(s); the profile is in fleet.json.\n"
        "# Pods request what they are limited to (Guaranteed QoS). One row's replicas are not\n"
        "# started together: a Job starts pods as others end (see `rifebench fleet k8s --help`).\n"
        "# kubectl apply -f THIS; when the Job completes, copy the volume's folder here and run:\n"
        "#   rifebench fleet report DIR\n"
    )
    return head + yaml.dump_all(docs, Dumper=_plain_dumper(), sort_keys=False)


def _plain_dumper() -> type:
    """SafeDumper writing plain YAML: a shared dict is written again, never as an
    anchor and alias; a string of several lines (the plan) as a literal block, not
    an escaped one-line string."""
    import yaml

    class PlainDumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    def text(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)

    PlainDumper.add_representer(str, text)
    return PlainDumper
