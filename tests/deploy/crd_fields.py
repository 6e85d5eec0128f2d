"""The agent-sandbox v1beta1 fields the example SandboxTemplate and SandboxWarmPool may use (from the CRDs'
Go types); the Kubernetes schemas do not know these kinds, so the tests check them field by field."""

from __future__ import annotations

from typing import Any

import kubernetes_validate

GROUP_VERSION = "extensions.agents.x-k8s.io/v1beta1"
TEMPLATE_SPEC = {
    "podTemplate",
    "volumeClaimTemplates",
    "service",
    "networkPolicyManagement",
    "networkPolicy",
    "envVarsInjectionPolicy",
    "volumeClaimTemplatesPolicy",
}
ENUMS = {
    "networkPolicyManagement": {"Managed", "Unmanaged"},
    "envVarsInjectionPolicy": {"Disallowed", "Allowed", "Overrides"},
    "volumeClaimTemplatesPolicy": {"Disallowed", "Allowed", "Overrides"},
}
POOL_SPEC = {"replicas", "sandboxTemplateRef", "updateStrategy"}
UPDATE_STRATEGIES = {"OnReplenish", "Recreate"}
K8S_VERSION = "1.33.0"


def template_problems(obj: dict[str, Any]) -> list[str]:
    problems = []
    if obj.get("apiVersion") != GROUP_VERSION:
        problems.append(f"apiVersion {obj.get('apiVersion')!r}")
    spec = obj.get("spec") or {}
    problems += [f"unknown spec field {key}" for key in set(spec) - TEMPLATE_SPEC]
    problems += [f"{key}={spec[key]!r}" for key, allowed in ENUMS.items() if key in spec and spec[key] not in allowed]
    pod_template = spec.get("podTemplate")
    if not isinstance(pod_template, dict) or "spec" not in pod_template:
        return [*problems, "podTemplate.spec is required"]
    problems += [f"unknown podTemplate field {key}" for key in set(pod_template) - {"metadata", "spec"}]
    metadata = pod_template.get("metadata") or {}
    problems += [f"podTemplate.metadata.{key} is not used" for key in set(metadata) - {"labels", "annotations"}]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"}, "spec": pod_template["spec"]}
    try:
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        problems.append(f"podTemplate.spec: {error.message}")
    policy = spec.get("networkPolicy")
    if policy is not None:
        problems += [f"unknown networkPolicy field {key}" for key in set(policy) - {"ingress", "egress"}]
    return problems


def pool_problems(obj: dict[str, Any]) -> list[str]:
    problems = []
    if obj.get("apiVersion") != GROUP_VERSION:
        problems.append(f"apiVersion {obj.get('apiVersion')!r}")
    spec = obj.get("spec") or {}
    problems += [f"unknown spec field {key}" for key in set(spec) - POOL_SPEC]
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 0:
        problems.append(f"replicas={replicas!r}")
    ref = spec.get("sandboxTemplateRef") or {}
    if set(ref) != {"name"} or not ref.get("name"):
        problems.append("sandboxTemplateRef needs exactly a name")
    strategy = (spec.get("updateStrategy") or {}).get("type", "OnReplenish")
    if strategy not in UPDATE_STRATEGIES:
        problems.append(f"updateStrategy.type={strategy!r}")
    return problems
