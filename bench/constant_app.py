"""The raw HTTP baseline: a bare FastAPI app whose one endpoint returns a constant.

`python -m bench.constant_app PORT` serves it under uvicorn exactly as the services are
served (`services.common.app.serve`: one worker, default loop and HTTP parser, log level
warning), without their middleware, auth, tracing or database.
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI

PATH = "/constant"

app = FastAPI(title="constant")


@app.get(PATH)
async def constant() -> dict[str, str]:
    return {"status": "ok"}


def main(argv: list[str]) -> None:
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(argv[0]),
        log_level="warning",
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
