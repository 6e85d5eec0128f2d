"""Pattern 3: a remote `kubernetes-agent-sandbox serve` is the deep agent's backend, over MCP."""

from __future__ import annotations

from deepagents import create_deep_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage

from langchain_kubernetes_agent_sandbox import McpSandboxBackend
from langchain_kubernetes_agent_sandbox.adapter import mcp_connect


async def run(model: BaseChatModel, url: str, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    backend = McpSandboxBackend(mcp_connect.http(url, headers=headers))
    try:
        agent = create_deep_agent(model=model, backend=backend)
        result = await agent.ainvoke({"messages": [HumanMessage("Which Python version does the sandbox run?")]})
        return str(result["messages"][-1].content)
    finally:
        await backend.aclose()
