"""deepagents and LangChain doors to the sandboxes: backends for `create_deep_agent(backend=...)` and tools."""

from .backend import ADAPTER_LIMITS, SandboxBackend

__all__ = ["ADAPTER_LIMITS", "SandboxBackend"]
