"""Where the console script pointed before the command line moved to `cli/`: an install made before then keeps
a `kubernetes-agent-sandbox` script that imports `main` from here, so it still starts after an upgrade in place
(an editable install, which regenerates no script)."""

from ..cli.main import main

__all__ = ["main"]
