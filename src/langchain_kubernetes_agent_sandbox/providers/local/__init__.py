"""The local provider: isolated workspaces on this machine, the embedded default."""

from .bubblewrap import UserDrop
from .limits import ResourceLimits
from .provider import LocalProvider, LocalSandbox

__all__ = ["LocalProvider", "LocalSandbox", "ResourceLimits", "UserDrop"]
