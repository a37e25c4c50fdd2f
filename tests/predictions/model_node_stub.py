"""A test model node and orchestrator, over real loopback sockets, for the remote gateway.

- `ModelNodeServicer`: the client's own generated `DynamicSubclassService` servicer, hosting one
  Python model object the way `crunch-model-runner` does (Setup, Call with the node's status
  codes, one call at a time -> RESOURCE_EXHAUSTED "Server busy"), plus gRPC health (SERVING).
- The orchestrator: a WebSocket server on `/<crunch_id>` that sends the `init` event with the
  current model states and pushes `update` events, and records `report_failure` messages.
  `add_node` registers a node started elsewhere (tests/e2e/test_real_model_node.py: real
  `crunch-model-runner` processes).

Everything runs on one asyncio loop in a background thread.
"""

import asyncio
import json
import threading

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from model_runner_client.grpc.generated import dynamic_subclass_pb2, dynamic_subclass_pb2_grpc
from model_runner_client.grpc.generated.commons_pb2 import Status, Variant
from model_runner_client.utils.datatype_transformer import decode_data, detect_data_type, encode_data
from websockets.asyncio.server import serve


class ModelNodeServicer(dynamic_subclass_pb2_grpc.DynamicSubclassServiceServicer):
    def __init__(self, model) -> None:
        self.model = model
        self.busy = False

    async def Setup(self, request, context):
        return dynamic_subclass_pb2.SetupResponse(status=Status(code="SUCCESS"))

    async def Call(self, request, context):
        if self.busy:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "Server busy")
        method = getattr(self.model, request.methodName, None)
        if method is None:
            return dynamic_subclass_pb2.CallResponse(status=Status(code="BAD_IMPLEMENTATION", message="no such method"))
        args = [
            decode_data(a.data.value, a.data.type) for a in sorted(request.methodArguments, key=lambda a: a.position)
        ]
        kwargs = {k.keyword: decode_data(k.data.value, k.data.type) for k in request.methodKwArguments}
        self.busy = True
        try:
            value = await asyncio.to_thread(method, *args, **kwargs)
            kind = detect_data_type(value)
            response = Variant(type=kind, value=encode_data(kind, value))
        except Exception as exc:
            return dynamic_subclass_pb2.CallResponse(
                status=Status(code="MODEL_FAILED", message=f"The model raised an exception: {exc}")
            )
        finally:
            self.busy = False
        return dynamic_subclass_pb2.CallResponse(status=Status(code="SUCCESS"), methodResponse=response)


class Harness:
    """Model nodes + orchestrator on a private event loop thread."""

    def __init__(self, crunch_id: str) -> None:
        self.crunch_id = crunch_id
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.states: dict[str, dict] = {}
        self.servers: dict[str, grpc.aio.Server] = {}
        self.connections: set = set()
        self.received: list[dict] = []
        self.ws_server = None
        self.ws_port = self.run(self._start_ws())

    def run(self, coro, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start_ws(self) -> int:
        self.ws_server = await serve(self._handler, "127.0.0.1", 0)
        return self.ws_server.sockets[0].getsockname()[1]

    async def _handler(self, connection):
        if connection.request.path != f"/{self.crunch_id}":
            await connection.send(json.dumps({"error": "crunch_id is required"}))
            return
        self.connections.add(connection)
        await connection.send(json.dumps({"event": "init", "data": list(self.states.values())}))
        try:
            async for message in connection:
                self.received.append(json.loads(message))
        finally:
            self.connections.discard(connection)

    async def _start_node(self, model) -> int:
        server = grpc.aio.server()
        dynamic_subclass_pb2_grpc.add_DynamicSubclassServiceServicer_to_server(ModelNodeServicer(model), server)
        health = health_aio.HealthServicer()
        await health.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self.server_for_port = server
        return port, server

    def add_model(self, model_id: str, model, *, name: str, cruncher_id: str, cruncher_name: str, deployment_id: str):
        """Start a model node and record it RUNNING (sent in `init`, or pushed with `update`)."""
        port, server = self.run(self._start_node(model))
        self.servers[model_id] = server
        return self.add_node(
            model_id, port, name=name, cruncher_id=cruncher_id, cruncher_name=cruncher_name, deployment_id=deployment_id
        )

    def add_node(
        self, model_id: str, port: int, *, name: str, cruncher_id: str, cruncher_name: str, deployment_id: str
    ):
        """Record a model node already listening on 127.0.0.1:`port` (e.g. a real one) as RUNNING."""
        self.states[model_id] = {
            "deployment_id": deployment_id,
            "model_id": model_id,
            "infos": {"model_name": name, "cruncher_id": cruncher_id, "cruncher_name": cruncher_name},
            "state": "RUNNING",
            "ip": "127.0.0.1",
            "port": port,
        }
        return self.states[model_id]

    def push(self, *states: dict) -> None:
        async def send():
            message = json.dumps({"event": "update", "data": list(states)})
            for connection in list(self.connections):
                await connection.send(message)

        self.run(send())

    def stop_model(self, model_id: str) -> None:
        self.states[model_id] = {**self.states[model_id], "state": "STOPPED"}
        self.push(self.states[model_id])

    def close(self) -> None:
        async def shutdown():
            for server in self.servers.values():
                await server.stop(grace=None)
            self.ws_server.close()
            await self.ws_server.wait_closed()

        try:
            self.run(shutdown())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
