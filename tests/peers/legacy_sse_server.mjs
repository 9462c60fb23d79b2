// A legacy HTTP+SSE MCP server (MCP 2024-11-05) built on the TypeScript SDK's SSEServerTransport,
// the one whose `endpoint` event carries `sessionId`. GET /sse opens a session, POST
// /messages?sessionId=... posts into it. Prints "READY <url>" once it listens on loopback, and
// "POST <query>" for every message that reaches it (the tests need to know what arrived).
import http from "node:http";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { SSEServerTransport } from "@modelcontextprotocol/sdk/server/sse.js";
import { z } from "zod";

const transports = new Map();

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, "http://127.0.0.1");
  if (req.method === "GET" && url.pathname === "/sse") {
    const transport = new SSEServerTransport("/messages", res);
    transports.set(transport.sessionId, transport);
    res.on("close", () => transports.delete(transport.sessionId));
    const mcp = new McpServer({ name: "legacy-ts", version: "1.0.0" });
    mcp.registerTool("echo", { inputSchema: { text: z.string() } }, async ({ text }) => ({
      content: [{ type: "text", text }],
    }));
    await mcp.connect(transport);
    return;
  }
  if (req.method === "POST" && url.pathname === "/messages") {
    console.log(`POST ${url.search}`);
    const transport = transports.get(url.searchParams.get("sessionId"));
    if (!transport) {
      res.writeHead(404).end("Session not found");
      return;
    }
    await transport.handlePostMessage(req, res);
    return;
  }
  res.writeHead(404).end();
});

server.listen(0, "127.0.0.1", () => {
  console.log(`READY http://127.0.0.1:${server.address().port}`);
});
