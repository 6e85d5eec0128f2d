"""The `kubernetes-agent-sandbox` command line: `main` builds one subcommand per module here (serve, demo,
doctor, fake-cluster), each a thin layer over the package that does the work."""
