"""Preview URLs: a server listening on a port inside a sandbox, reached by the session's owner through this
server (`expose_port`), and by nobody else."""

from .service import Previews
from .table import PreviewLimits

__all__ = ["PreviewLimits", "Previews"]
