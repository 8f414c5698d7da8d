"""A Kubernetes API emulator on a free loopback port for the Kubernetes tools' live tests.

Usage: python kmock_server.py SEED.json

SEED.json: {"resources": [{"group", "version", "plural", "kind", "namespaced"}],
            "objects": [{"group", "version", "plural", "namespace", "object"}],
            "logs": {"namespace/pod/container[#previous]": "text"}}

Prints `PORT <n>` on its first line once it listens, then serves until killed
(or until its stdin closes, so it never outlives the test that started it).

kmock 0.8 is an in-memory apiserver: discovery, list/get/create/merge-patch/
delete. This script adds what a real apiserver has and the tools use:
  - `pods/{name}/log` (with container, previous and tailLines), from the seed;
  - `pods/{name}/eviction`, which deletes the pod as the eviction API does
    when no PodDisruptionBudget stands in the way;
  - `dryRun=All` on patch, delete and eviction: the answer is computed and
    nothing is stored (kmock itself would store the change).
"""

import asyncio
import copy
import json
import sys

import aiohttp.web
import kmock
from kmock._internal import dicts, enums


class Emulator(kmock.KubernetesEmulator):
    def __init__(self, logs):
        super().__init__()
        self._logs = logs

    async def _handle(self, request):
        if request.resource is not None and request.subresource == "log":
            return self._serve_log(request)
        if request.resource is not None and request.subresource == "eviction":
            return await self._serve_eviction(request)
        if request.params.get("dryRun") == "All" and request.action in (
            enums.action.UPDATE,
            enums.action.DELETE,
        ):
            return await self._serve_dry_run(request)
        return await super()._handle(request)

    def _find(self, request):
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            raise kmock.KubernetesObjectNotFoundError(
                message=f'{request.resource.plural} "{request.name}" not found'
            )
        return self.objects[key]

    def _serve_log(self, request):
        pod = self._find(request)
        # Like the API server: a pod's only (here: first) container by default.
        first = (pod.raw.get("spec", {}).get("containers") or [{}])[0].get("name", "")
        container = request.params.get("container") or first
        key = f"{request.namespace}/{request.name}/{container}"
        if request.params.get("previous") == "true":
            key += "#previous"
        if key not in self._logs:
            raise kmock.KubernetesError(
                status=400,
                reason="BadRequest",
                message=f'previous terminated container "{container}" in pod "{request.name}" not found'
                if key.endswith("#previous")
                else f'container "{container}" in pod "{request.name}" has no logs',
            )
        text = self._logs[key]
        tail = request.params.get("tailLines")
        if tail is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(tail):]) if int(tail) > 0 else ""
        return aiohttp.web.Response(text=text, content_type="text/plain")

    async def _serve_eviction(self, request):
        obj = self._find(request)
        if request.params.get("dryRun") != "All":
            async with self._lock:
                obj.delete()
        return aiohttp.web.json_response(
            {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Success", "code": 201},
            status=201,
        )

    async def _serve_dry_run(self, request):
        obj = self._find(request)
        current = copy.deepcopy(obj.raw)
        if request.action == enums.action.UPDATE:
            current = dicts.patch_dict(current, request.data or {})
        return aiohttp.web.json_response(current)


async def main(seed_path):
    with open(seed_path) as f:
        seed = json.load(f)
    k = Emulator(seed.get("logs", {}))
    for r in seed["resources"]:
        k.resources[kmock.resource(group=r["group"], version=r["version"], plural=r["plural"])] = kmock.ResourceInfo(
            kind=r["kind"],
            namespaced=r["namespaced"],
            verbs={"get", "list", "watch", "create", "patch", "update", "delete"},
        )
    for o in seed["objects"]:
        res = kmock.resource(group=o["group"], version=o["version"], plural=o["plural"])
        k.objects[res, o["namespace"], o["object"]["metadata"]["name"]] = o["object"]
    async with k, kmock.Server(k) as server:
        print(f"PORT {server.port}", flush=True)
        # Serve until the parent closes our stdin (or kills us).
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
