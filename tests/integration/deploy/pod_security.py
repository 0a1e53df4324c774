"""The Pod Security Standards' `restricted` profile (Kubernetes 1.32, `latest`), as a check of
one pod spec: what the `pod-security.kubernetes.io/enforce: restricted` namespace label makes
the API server refuse. Written from the published standard, for the manifests in deploy/ and
the trainer Job the scheduler builds; no cluster runs here."""

from __future__ import annotations

from typing import Any

Doc = dict[str, Any]

RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
SELINUX_TYPES = {
    None, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t",
}  # fmt: skip


def _containers(pod: Doc) -> list[Doc]:
    return [
        *pod.get("initContainers", []),
        *pod.get("containers", []),
        *pod.get("ephemeralContainers", []),
    ]


def _pod_level(pod: Doc) -> list[str]:
    found = [f"{key} is set" for key in ("hostNetwork", "hostPID", "hostIPC") if pod.get(key)]
    for volume in pod.get("volumes", []):
        kind = next(k for k in volume if k != "name")
        if kind not in RESTRICTED_VOLUMES:
            found.append(f"volume {volume['name']} is a {kind}")
    context = pod.get("securityContext") or {}
    for sysctl in context.get("sysctls", []):
        if sysctl["name"] not in SAFE_SYSCTLS:
            found.append(f"sysctl {sysctl['name']}")
    if context.get("runAsUser") == 0:
        found.append("the pod runs as user 0")
    if (context.get("seLinuxOptions") or {}).get("type") not in SELINUX_TYPES:
        found.append("the pod's SELinux type")
    if (context.get("appArmorProfile") or {}).get("type") == "Unconfined":
        found.append("the pod's AppArmor profile is Unconfined")
    return found


def _container(pod: Doc, c: Doc) -> list[str]:
    name, context = c["name"], c.get("securityContext") or {}
    pod_context = pod.get("securityContext") or {}
    found = []
    if context.get("privileged"):
        found.append(f"{name}: privileged")
    if context.get("allowPrivilegeEscalation") is not False:
        found.append(f"{name}: allowPrivilegeEscalation is not false")
    capabilities = context.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        found.append(f"{name}: capabilities do not drop ALL")
    if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
        found.append(f"{name}: adds capabilities {capabilities['add']}")
    non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
    if non_root is not True:
        found.append(f"{name}: runAsNonRoot is not true")
    if context.get("runAsUser") == 0:
        found.append(f"{name}: runs as user 0")
    seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
    if seccomp not in ("RuntimeDefault", "Localhost"):
        found.append(f"{name}: seccompProfile is {seccomp or 'unset'}")
    if any(p.get("hostPort") for p in c.get("ports", [])):
        found.append(f"{name}: hostPort")
    if context.get("procMount", "Default") != "Default":
        found.append(f"{name}: procMount")
    if (context.get("seLinuxOptions") or {}).get("type") not in SELINUX_TYPES:
        found.append(f"{name}: SELinux type")
    if (context.get("appArmorProfile") or {}).get("type") == "Unconfined":
        found.append(f"{name}: AppArmor profile is Unconfined")
    return found


def restricted_violations(pod: Doc) -> list[str]:
    """What in the pod spec `pod` (camelCase, as sent to the API) `restricted` refuses."""
    found = _pod_level(pod)
    for c in _containers(pod):
        found += _container(pod, c)
    return found
