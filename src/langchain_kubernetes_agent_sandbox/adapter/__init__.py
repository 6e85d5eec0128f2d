"""deepagents and LangChain doors to the sandboxes: backends for `create_deep_agent(backend=...)` and tools."""

from . import mcp_connect
from .backend import ADAPTER_LIMITS, SandboxBackend
from .mcp_backend import McpSandboxBackend

__all__ = ["ADAPTER_LIMITS", "McpSandboxBackend", "SandboxBackend", "mcp_connect"]
