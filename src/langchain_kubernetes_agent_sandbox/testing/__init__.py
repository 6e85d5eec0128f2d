"""An imitation agent-sandbox cluster for tests, benchmarks and users' own CI: Kubernetes API, controller,
runtime pods (isolated by the local provider) and router, spoken to over HTTP like a real cluster."""

from .cluster import FakeCluster
from .controller import PoolSpec
from .faults import Faults

__all__ = ["FakeCluster", "Faults", "PoolSpec"]
