"""deepagents and LangChain doors to the sandboxes: backends for `create_deep_agent(backend=...)` and tools."""

from . import mcp_connect
from .backend import ADAPTER_LIMITS, SandboxBackend
from .kubernetes import KubernetesAgentSandbox
from .mcp_backend import McpSandboxBackend
from .python_tool import execute_python_tool, sandbox_per_run, sandbox_per_run_sync

__all__ = [
    "ADAPTER_LIMITS",
    "KubernetesAgentSandbox",
    "McpSandboxBackend",
    "SandboxBackend",
    "execute_python_tool",
    "mcp_connect",
    "sandbox_per_run",
    "sandbox_per_run_sync",
]
