"""Pattern 1: the sandbox is the deep agent's backend, so its file tools and `execute` act inside it."""

from __future__ import annotations

import asyncio

from deepagents import create_deep_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage

from langchain_kubernetes_agent_sandbox import SandboxBackend


async def run(model: BaseChatModel | str, state_dir: str | None = None) -> str:
    async with await SandboxBackend.alocal(state_dir) as backend:
        agent = create_deep_agent(model=model, backend=backend)
        result = await agent.ainvoke({"messages": [HumanMessage("Write /app/fib.py printing fib(20), run it.")]})
        return str(result["messages"][-1].content)


if __name__ == "__main__":
    print(asyncio.run(run("anthropic:claude-sonnet-4-5")))
