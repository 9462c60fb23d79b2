"""Run one benchmark target under uvicorn: ``python -m bench.serve TARGET --port P [--core C] [--opt k=v]``.

The process pins itself to ``--core`` before importing anything heavy, then serves on
127.0.0.1 with uvicorn's ``uvloop`` loop and ``httptools`` parser when they are installed
(else asyncio / h11: the choice is printed on stderr and recorded by the harness). Access
logging is off: it would dominate the cost of the cheapest routes.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys


def uvicorn_choices() -> tuple[str, str]:
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return loop, http


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("target")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--core", type=int, default=None)
    p.add_argument("--opt", action="append", default=[], help="key=value passed to the target factory")
    a = p.parse_args(argv)
    if a.core is not None:
        os.sched_setaffinity(0, {a.core})
    opts = dict(kv.split("=", 1) for kv in a.opt)
    opts["_port"] = str(a.port)  # targets that build their own public URL need it

    import uvicorn

    from bench import targets

    app = targets.build(a.target, opts)
    loop, http = uvicorn_choices()
    print(f"bench.serve {a.target} port={a.port} core={a.core} loop={loop} http={http}", file=sys.stderr, flush=True)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=a.port,
        loop=loop,
        http=http,
        log_level="warning",
        access_log=False,
        lifespan="auto",
        backlog=512,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
