"""`kubernetes-agent-sandbox fake-cluster` prints URLs and a kubeconfig that a Kubernetes client can use."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx


def test_fake_cluster_command_prints_urls_and_a_working_kubeconfig() -> None:
    argv = [sys.executable, "-m", "langchain_kubernetes_agent_sandbox.cli.main", "fake-cluster", "--json"]
    argv += ["--pool", "tiny=1", "--exit-on-stdin-eof"]
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as process:
        assert process.stdout is not None
        assert process.stdin is not None
        info = json.loads(process.stdout.readline())
        with open(info["kubeconfig"]) as handle:
            kubeconfig = json.load(handle)
        assert kubeconfig["clusters"][0]["cluster"]["server"] == info["api_url"]
        pools = httpx.get(
            info["api_url"] + "/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/default/sandboxwarmpools"
        )
        assert [item["metadata"]["name"] for item in pools.json()["items"]] == ["tiny"]
        assert httpx.get(info["router_url"] + "/healthz").json() == {"status": "ok"}
        process.stdin.close()
        assert process.wait(20) == 0
