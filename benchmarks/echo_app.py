"""The raw baseline: a bare FastAPI endpoint under uvicorn that echoes a small JSON answer.

    python benchmarks/echo_app.py --port 8100
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

app = FastAPI()
ANSWER = b'{"model":"echo","route":null,"trace_id":"0","pinned":false}'


@app.post("/echo")
async def echo(request: Request) -> Response:
    await request.body()  # read the body, as any real endpoint must
    return Response(ANSWER, media_type="application/json")


@app.get("/healthz")
async def healthz() -> Response:
    return Response(b"{}", media_type="application/json")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
