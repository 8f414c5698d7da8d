"""A third-party MCP client (the Python SDK) against cerebro's MCP server.

usage: mcp_client.py (stdio CEREBRO_BINARY | http URL [TOKEN])
       mcp_client.py call URL TOKEN TOOL ARGS_JSON

Lists the tools, calls one with good and with bad arguments, and prints one
JSON object with what it saw, in MCP's wire shapes, for the Rust test to
check. Any failure to connect is printed as {"error": ...}.
"""

import asyncio
import json
import sys

from mcp import Client, StdioServerParameters

LOG = "\n".join(
    [f"ERROR connection refused to 10.0.3.{i}:5432 after {i * 10}ms" for i in range(1, 40)]
    + [f"INFO request served in {i}ms" for i in range(1, 20)]
)


def wire(model):
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def call(argv):
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    url, token, tool, args = argv[1], argv[2], argv[3], json.loads(argv[4])
    client_http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    async with Client(streamable_http_client(url, http_client=client_http)) as client:
        return {"result": wire(await client.call_tool(tool, args))}


async def run(argv):
    if argv[0] == "call":
        return await call(argv)
    if argv[0] == "http":
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        headers = {"Authorization": f"Bearer {argv[2]}"} if len(argv) > 2 else {}
        server = streamable_http_client(argv[1], http_client=httpx2.AsyncClient(headers=headers, timeout=30))
    else:
        server = StdioServerParameters(command=argv[1], args=["mcp"])
    out = {}
    async with Client(server) as client:
        listed = await client.list_tools()
        out["tools"] = [wire(t) for t in listed.tools]
        good = await client.call_tool("cluster_log_lines", {"text": LOG})
        out["good"] = wire(good)
        bad = await client.call_tool("cluster_log_lines", {"txt": LOG})
        out["bad"] = wire(bad)
    return out


def main():
    try:
        out = asyncio.run(run(sys.argv[1:]))
    except BaseException as e:  # noqa: BLE001 - report, the test decides
        out = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(out))


main()
