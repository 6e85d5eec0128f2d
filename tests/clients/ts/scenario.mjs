// One user's session through a TypeScript MCP client, as tests/clients/test_clients.py drives it.
//
// Usage: node scenario.mjs '<json>' where the JSON names the client ("sdk": @modelcontextprotocol/sdk, what
// desktop clients and IDEs are built on; "client": @modelcontextprotocol/client, its 2026-07-28 successor, in its
// "auto" version negotiation), the server ({"transport": "stdio", "server": [argv], "env": {...}} or
// {"transport": "http", "url": ..., "token": ...}) and the session's inputs ("command", "code", "upload").
// Prints one JSON object of what it saw; the Python test judges it. A failed call, or a result the SDK refuses
// against its tool's output schema, ends the script with exit code 1 and the error on stderr.

const spec = JSON.parse(process.argv[2]);

async function sdk(name) {
  if (name === "sdk") {
    const { Client } = await import("@modelcontextprotocol/sdk/client/index.js");
    const { StdioClientTransport } = await import("@modelcontextprotocol/sdk/client/stdio.js");
    const { StreamableHTTPClientTransport } = await import("@modelcontextprotocol/sdk/client/streamableHttp.js");
    return { Client, StdioClientTransport, StreamableHTTPClientTransport };
  }
  if (name === "client") {
    const { Client, StreamableHTTPClientTransport } = await import("@modelcontextprotocol/client");
    const { StdioClientTransport } = await import("@modelcontextprotocol/client/stdio");
    return { Client, StdioClientTransport, StreamableHTTPClientTransport };
  }
  throw new Error(`unknown client ${name}: "sdk" or "client"`);
}

function transportFor(kit) {
  if (spec.transport === "stdio") {
    const [command, ...args] = spec.server;
    return new kit.StdioClientTransport({ command, args, env: spec.env });
  }
  return new kit.StreamableHTTPClientTransport(new URL(spec.url), {
    requestInit: { headers: { Authorization: `Bearer ${spec.token}` } },
  });
}

// Every value of a result's structured content replaced by one of another JSON type: a result no output schema
// that types its fields accepts, whatever the fields are.
function wronglyTyped(structured) {
  return Object.fromEntries(
    Object.entries(structured).map(([key, value]) => [key, typeof value === "string" ? 12345 : "not-its-type"]),
  );
}

const kit = await sdk(spec.client);
const transport = transportFor(kit);
// The 2.x client connects the 2025 way unless asked to negotiate; "auto" probes server/discover first.
const options = spec.client === "client" ? { versionNegotiation: { mode: "auto" } } : undefined;
const client = new kit.Client({ name: `kas-test-ts-${spec.client}`, version: "1.0.0" }, options);
await client.connect(transport);

const seen = {
  protocol: client.getNegotiatedProtocolVersion?.() ?? transport.protocolVersion ?? null,
  output_schemas: {},
  calls: {},
};
const { tools } = await client.listTools(); // the SDK compiles each tool's output schema here
for (const tool of tools) seen.output_schemas[tool.name] = tool.outputSchema !== undefined;

async function call(name, args) {
  const result = await client.callTool({ name, arguments: args }); // throws if the result fails its schema
  if (result.isError) throw new Error(`${name} failed: ${JSON.stringify(result.content)}`);
  seen.calls[name] = { structured: result.structuredContent ?? null, text: result.content.map((b) => b.text ?? "") };
  return result.structuredContent;
}

const { session_id } = await call("create_session", {});
await call("execute", { session_id, command: spec.command });
await call("execute_python", { session_id, code: spec.code });
await call("upload_file", { session_id, path: "notes/unicode.txt", content: spec.upload });
await call("list_files", { session_id, path: "notes" });
await call("download_file", { session_id, path: "notes/unicode.txt" });

// A call that fails must reach the caller as a tool error it can show, not as an exception.
seen.failed = await client.callTool({ name: "download_file", arguments: { session_id, path: "notes/missing.txt" } }).then(
  (result) => ({ threw: false, is_error: result.isError === true, text: result.content.map((b) => b.text ?? "") }),
  (error) => ({ threw: true, error: String(error.message ?? error) }),
);

// The same call once more, its result retyped on the way in: the SDK must refuse it.
const deliver = transport.onmessage;
transport.onmessage = (message, extra) => {
  if (message.result?.structuredContent) {
    message = { ...message, result: { ...message.result, structuredContent: wronglyTyped(message.result.structuredContent) } };
    transport.onmessage = deliver;
  }
  deliver(message, extra);
};
try {
  await client.callTool({ name: "execute", arguments: { session_id, command: "echo again" } });
  seen.tampered = { refused: false, error: null };
} catch (error) {
  seen.tampered = { refused: true, error: String(error.message ?? error) };
}
transport.onmessage = deliver;

await call("close_session", { session_id });
await call("list_sessions", {});
await client.close();
process.stdout.write(JSON.stringify(seen) + "\n");
