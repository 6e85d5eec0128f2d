"""`python -m langchain_kubernetes_agent_sandbox` does what the console script does."""

import sys

from .cli.main import main

sys.exit(main())
