"""deploy/models-pull-job.example.yaml: valid, and it writes where the other pods read.

`whetstone models pull --all` in that Job puts each base model at its registry `path`; the
API, scheduler, vLLM and trainer pods must then find the files at that same path, on the
same volume claim.
"""

from __future__ import annotations

from typing import Any

import yaml

from tests.integration.deploy.test_deploy_manifests import (
    DEPLOY,
    Doc,
    executor_settings,
    named,
    pod_templates,
    render,
    sample_job,
)
from tests.unit.executors.fake_kube import validate

JOB = DEPLOY / "models-pull-job.example.yaml"


def mounts_of_claim(pod: Doc, claim: str) -> list[tuple[str, bool]]:
    """(mount path, read-only) of every container mount of `claim` in `pod`."""
    volumes = {
        v["name"]
        for v in pod.get("volumes", [])
        if v.get("persistentVolumeClaim", {}).get("claimName") == claim
    }
    return [
        (m["mountPath"], bool(m.get("readOnly")))
        for c in pod["containers"]
        for m in c.get("volumeMounts", [])
        if m["name"] in volumes
    ]


def test_the_pull_job_writes_the_models_volume_where_every_pod_reads_it() -> None:
    job: dict[str, Any] = yaml.safe_load(JOB.read_text())
    validate(job)
    docs = render("minio-postgres")
    config = named(docs, "ConfigMap", "whetstone-config")["data"]
    claim = config["WHETSTONE_K8S_MODELS_PVC"]
    models_dir = config["WHETSTONE_MODELS_DIR"]
    assert models_dir == config["WHETSTONE_K8S_MODELS_MOUNT_PATH"]

    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["whetstone", "models", "pull", "--all"]
    assert mounts_of_claim(pod, claim) == [(models_dir, False)]
    registry = yaml.safe_load(
        named(docs, "ConfigMap", "whetstone-base-models")["data"]["base-models.yaml"]
    )
    assert all(m["path"].startswith(models_dir + "/") for m in registry["models"])
    assert any(m.get("source", "").startswith("hf://") for m in registry["models"])

    readers = {w["metadata"]["name"]: t["spec"] for w, t in pod_templates(docs)}
    readers["trainer"] = sample_job(executor_settings(docs))["spec"]["template"]["spec"]
    for name in ("whetstone-api", "whetstone-scheduler", "vllm-llama-3-1-8b-instruct", "trainer"):
        assert mounts_of_claim(readers[name], claim) == [(models_dir, True)], name
