"""A third-party MCP server (the Python SDK's MCPServer) for cerebro's MCP
client tests: `mcp_server.py stdio` or `mcp_server.py http PORT`."""

import sys

from mcp.server.mcpserver import MCPServer

app = MCPServer("runbook-tools")


@app.tool()
def add_numbers(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@app.tool()
def lookup_owner(service: str) -> str:
    """The team that owns a service."""
    owners = {"checkout": "team-payments", "cart": "team-storefront"}
    if service not in owners:
        raise ValueError(f"no owner recorded for {service}")
    return owners[service]


if sys.argv[1] == "http":
    app.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]), json_response=True, stateless_http=True)
else:
    app.run()
