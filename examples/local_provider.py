"""The README's local-provider example: a sandbox, a file, a command, found again by labels."""

import asyncio

from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider


async def main() -> None:
    provider = LocalProvider()  # state in KUBERNETES_AGENT_SANDBOX_STATE_DIR, or the default folder
    sandbox = await provider.create(labels={"owner": "me"}, lifetime=3600)
    await sandbox.write_file("data.csv", b"x\n1\n2\n")
    result = await sandbox.run("python3 -c 'print(sum(map(int, open(\"data.csv\").read().split()[1:])))'")
    print(result.stdout.strip(), result.exit_code)  # 3 0
    again = await LocalProvider().list({"owner": "me"})  # found again, also after a restart
    print([s.id for s in again] == [sandbox.id])  # True
    await sandbox.terminate()


asyncio.run(main())
