"""Run the sandbox as its own process: `python -m sandbox [--port N] [--tls] [--time-scale X]
[--state DIR]`. It prints one JSON line (url, ca_file, pid) once it listens and writes the same
to <state>/server.json, so a second reelflow process can find and reuse it."""

import argparse
import json
import os
import socket
import sys
from pathlib import Path

import uvicorn

from sandbox.app import build_app
from sandbox.knobs import Knobs
from sandbox.service import Sandbox
from sandbox.tls import ensure_certificates


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--tls", action="store_true", help="serve https with a private CA")
    parser.add_argument("--time-scale", type=float, default=None,
                        help="multiply every duration the sandbox emits")
    parser.add_argument("--state", default=os.environ.get(
        "REELFLOW_SANDBOX_STATE", str(Path(os.environ.get("REELFLOW_HOME", ".reelflow"))
                                      / "sandbox")))
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--calm", action="store_true", help="no random misbehaviour")
    parser.add_argument("--shared-render", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    state = Path(args.state).resolve()
    sandbox = Sandbox(state)
    knobs: Knobs = sandbox.knobs
    updates = {k: v for k, v in (("time_scale", args.time_scale), ("seed", args.seed)) if
               v is not None}
    if args.shared_render:
        updates["shared_render"] = True
    knobs = knobs.model_copy(update=updates)
    sandbox.set_knobs(knobs.calm() if args.calm else knobs)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    port = sock.getsockname()[1]
    ssl: dict = {}
    ca_file = None
    if args.tls:
        ca_file, cert, key = ensure_certificates(state / "tls")
        ssl = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    scheme = "https" if args.tls else "http"
    info = {"url": f"{scheme}://{args.host}:{port}", "pid": os.getpid(),
            "ca_file": str(ca_file) if ca_file else None, "state": str(state)}
    config = uvicorn.Config(build_app(sandbox), log_level="warning", access_log=False,
                            timeout_graceful_shutdown=1, **ssl)
    server = uvicorn.Server(config)
    (state / "server.json").write_text(json.dumps(info))
    print(json.dumps(info), flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        (state / "server.json").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
