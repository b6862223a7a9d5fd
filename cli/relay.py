"""relay: run the webhook relay in the foreground (Starlette under uvicorn, like the sandbox).
It receives the providers' deliveries for the callback URLs the workers send (REELFLOW_WEBHOOK_URL
set to the URL it prints), verifies them, and wakes the flow runs suspended on their jobs. It
needs the secret the workers sign callback URLs with (REELFLOW_WEBHOOK_SECRET), the journal they
use, and PREFECT_API_URL to resume runs."""

import argparse
import json
import logging
import socket

from cli.context import load_context, require
from cli.errors import UserError
from settings import jwks_url

HELP_EXAMPLES = """\
  reelflow relay --port 8470          # with REELFLOW_WEBHOOK_SECRET set
  reelflow relay --host 0.0.0.0 --public-url https://hooks.example.com --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    parser.add_argument("--port", default="0", help="0: any free port")
    parser.add_argument("--public-url", help="the URL providers reach it by (default: "
                        "http://HOST:PORT); what REELFLOW_WEBHOOK_URL must be")


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from relay.app import Relay, create_app
    from relay.signatures import Jwks
    from relay.waking import resume

    context = load_context()
    settings = context.settings
    if settings.webhook_secret is None:
        raise UserError("REELFLOW_WEBHOOK_SECRET", "the relay needs the secret every worker "
                        "signs its callback URLs with", ["any non-empty text, the same on "
                                                         "every worker and relay"])
    require(args.port.isdigit() and int(args.port) < 65536, "port",
            f"{args.port!r} is not a port number", ["0..65535"])
    port = int(args.port) or _free_port(args.host)
    keys = {protocol: Jwks(url) for protocol in ("fal_queue", "atlascloud")
            if (url := jwks_url(settings, protocol))}
    relay = Relay(context.journal(), settings.webhook_secret.get_secret_value(), keys, resume)
    public = args.public_url or f"http://{args.host}:{port}"
    print(json.dumps({"webhook_url": public, "port": port}) if args.json else
          f"relay listening on {args.host}:{port}\nexport REELFLOW_WEBHOOK_URL={public}",
          flush=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per resume otherwise
    uvicorn.run(create_app(relay), host=args.host, port=port, log_level="warning")
    return 0
