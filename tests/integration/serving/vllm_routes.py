"""Print every route vLLM's app registers for a command line, as JSON `[[method, path], ...]`.

`python -m tests.integration.serving.vllm_routes ARGS...` with ARGS what follows
`python -m vllm.entrypoints.openai.api_server` and vLLM's environment: the app is built by
vLLM's own builder (`build_app`) from vLLM's own argument parser, exactly as the server
builds it, but without an engine. Run in a subprocess: the test process never imports vLLM.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> None:
    from vllm.entrypoints.launchers.app import build_app
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    args = make_arg_parser(FlexibleArgumentParser()).parse_args(argv)
    app = build_app(args, supported_tasks=("generate",))
    routes = set()
    for route in app.routes:
        path = getattr(route, "path", None)
        if path is None:
            continue
        for method in getattr(route, "methods", None) or ["GET"]:  # a Mount answers any
            routes.add((method, path))
    print(json.dumps(sorted(routes)))


if __name__ == "__main__":
    main(sys.argv[1:])
