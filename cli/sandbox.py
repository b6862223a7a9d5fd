"""sandbox: run the local provider server (OpenAI Videos, fal queue, Kling native) in the
foreground, or start/stop the background one that REELFLOW_SANDBOX=auto shares."""

import argparse
import json
from pathlib import Path

from cli.context import load_context, require
from cli.errors import UserError
from tasks import sandbox_launcher as launcher

HELP_EXAMPLES = """\
  reelflow sandbox start --time-scale 0.01 --json
  reelflow sandbox status
  reelflow sandbox stop
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", default="run", help="run | start | stop | status")
    parser.add_argument("--port", default="0", help="0: any free port")
    parser.add_argument("--tls", action="store_true", help="https with a private CA")
    parser.add_argument("--time-scale", help="multiply every duration it emits")
    parser.add_argument("--state", help="state folder (default REELFLOW_HOME/sandbox)")
    parser.add_argument("--calm", action="store_true", help="no random misbehaviour")


def run(args: argparse.Namespace) -> int:
    actions = ["run", "start", "stop", "status"]
    require(args.action in actions, "action", f"{args.action!r}", actions)
    state = Path(args.state) if args.state else load_context().settings.home_path / "sandbox"
    scale = None
    if args.time_scale is not None:
        try:
            scale = float(args.time_scale)
        except ValueError:
            scale = 0.0
        require(scale > 0, "time_scale", f"{args.time_scale!r} is not a positive number")
    require(args.port.isdigit(), "port", f"{args.port!r} is not a port number", ["0..65535"])
    if args.action == "run":
        from sandbox import server  # its web app, for this action only

        argv = ["--state", str(state), "--port", args.port]
        argv += ["--time-scale", str(scale)] if scale else []
        argv += ["--tls"] if args.tls else []
        argv += ["--calm"] if args.calm else []
        return server.main(argv)
    if args.action == "start":
        try:
            info = launcher.ensure_running(state, time_scale=scale, tls=args.tls,
                                           same_speed=True)
        except launcher.OtherSpeed as err:
            raise UserError("time_scale", f"{err}: stop it first (reelflow sandbox stop), "
                            "then start it at the new speed") from None
    elif args.action == "stop":
        info = {"stopped": launcher.stop(state)}
    else:
        info = launcher.running(state) or {"running": False}
    print(json.dumps(info) if args.json else "\n".join(f"{k}: {v}" for k, v in info.items()))
    return 0
