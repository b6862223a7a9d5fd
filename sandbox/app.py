"""The sandbox as one ASGI app: each protocol under its own prefix, the file host, the admin;
its lifespan runs the webhook delivery worker."""

from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from sandbox import files
from sandbox.admin import Admin
from sandbox.atlascloud_api import AtlasCloud
from sandbox.errors import NotFound
from sandbox.fal_api import FalQueue
from sandbox.faults import FaultMiddleware, FaultQueue
from sandbox.kling_api import KlingNative
from sandbox.openai_api import OpenAIVideos
from sandbox.requests import RequestCountMiddleware, RequestCounts
from sandbox.service import Sandbox
from sandbox.webhooks import Webhooks


def build_app(sandbox: Sandbox) -> Starlette:
    faults = FaultQueue()
    webhooks = Webhooks(sandbox)
    requests = RequestCounts()

    @asynccontextmanager
    async def lifespan(app: Starlette):
        webhooks.start()
        try:
            yield
        finally:
            webhooks.stop()

    async def file_host(request: Request) -> Response:
        """Hosted outputs (fal, Kling): public URLs that expire."""
        name = request.path_params["name"]
        try:
            job = sandbox.job(name.removesuffix(".mp4"))
        except NotFound:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        now = sandbox.clock.now()
        if job.state(now) != "succeeded":
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        if now >= job.expires_at:
            return JSONResponse({"detail": "This file has expired"}, status_code=404)
        path = await run_in_threadpool(sandbox.video, job)
        world = sandbox.world(job.protocol)
        truncate = bool(request.scope.get("reelflow_truncate")) or (
            world.truncate_rate > 0 and sandbox.rng("truncate").random() < world.truncate_rate)
        return files.serve(request, path, "video/mp4", truncate=truncate)

    app = Starlette(routes=[
        Mount("/openai", routes=OpenAIVideos(sandbox).routes()),
        Mount("/fal", routes=FalQueue(sandbox, webhooks).routes()),
        Mount("/kling", routes=KlingNative(sandbox, webhooks).routes()),
        Mount("/atlascloud", routes=AtlasCloud(sandbox, webhooks).routes()),
        Route("/files/{name}", file_host, methods=["GET"]),
        Mount("/_admin", routes=Admin(sandbox, faults, webhooks, requests).routes()),
    ], lifespan=lifespan)
    app.add_middleware(FaultMiddleware, sandbox=sandbox, queue=faults)
    app.add_middleware(RequestCountMiddleware, counts=requests)  # outermost: faulted ones too
    return app
