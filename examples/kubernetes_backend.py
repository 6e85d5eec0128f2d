"""Pattern 1 on a cluster, as the 0.2.x README wrote it: wrap a `k8s_agent_sandbox` handle."""

from __future__ import annotations

from typing import Any

from deepagents import create_deep_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage

from langchain_kubernetes_agent_sandbox import KubernetesAgentSandbox


def run(model: BaseChatModel, client: Any, warm_pool: str = "python-pool") -> str:
    sandbox = KubernetesAgentSandbox(sandbox=client.create_sandbox(warm_pool), timeout=300)
    try:
        agent = create_deep_agent(model=model, backend=sandbox)
        result = agent.invoke({"messages": [HumanMessage("How many CPUs does the sandbox see?")]})
        return str(result["messages"][-1].content)
    finally:
        sandbox.sandbox.terminate()
        sandbox.close()
