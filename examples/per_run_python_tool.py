"""Pattern 2: the agent keeps its files in memory and gets an `execute_python` tool; each run has its own
sandbox, seeded with the agent's files under /app/ and terminated when the run ends."""

from __future__ import annotations

from deepagents import create_deep_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage

from langchain_kubernetes_agent_sandbox import SandboxProvider, execute_python_tool, sandbox_per_run


async def run(model: BaseChatModel, provider: SandboxProvider) -> str:
    agent = create_deep_agent(model=model, tools=[execute_python_tool(provider)])
    async with sandbox_per_run():
        result = await agent.ainvoke({"messages": [HumanMessage("Save 3 and 4 in /data.txt, then sum them.")]})
    return str(result["messages"][-1].content)
