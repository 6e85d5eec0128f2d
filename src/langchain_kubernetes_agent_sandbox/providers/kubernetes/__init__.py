"""The Kubernetes provider: agent-sandbox pods claimed from a warm pool through `k8s-agent-sandbox`."""

from .config import ConnectionMode, KubernetesConfig
from .handles import sandbox_from_handle
from .provider import KubernetesProvider
from .sandbox import KubernetesSandbox

__all__ = ["ConnectionMode", "KubernetesConfig", "KubernetesProvider", "KubernetesSandbox", "sandbox_from_handle"]
