"""Two small FastAPI services for the tracer's integration test, run by uvicorn in subprocesses.

ROLE=frontend serves /checkout/{outcome} and calls the payments service over httpx;
ROLE=payments serves /charge/{outcome}: ok, throttled (429), broken (an unhandled error) or flaky
(its ledger write fails once, is retried and the charge succeeds).
Tracing is set up the way an app would: configure() from OTEL_* variables, instrument_http(),
and the ASGI middleware.
"""

from __future__ import annotations

import os

import httpx
from fastapi import FastAPI
from fastapi.responses import JSONResponse

import tracer

tracer.configure()
tracer.instrument_http()

ROLE = os.environ.get("ROLE", "payments")
app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"role": ROLE}


if ROLE == "frontend":
    DOWNSTREAM = os.environ["DOWNSTREAM"]
    STATUS_SEEN_BY_CLIENT = {200: 200, 429: 429}

    @app.get("/checkout/{outcome}")
    async def checkout(outcome: str) -> JSONResponse:
        tracer.annotate("outcome", outcome)
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{DOWNSTREAM}/charge/{outcome}")
        return JSONResponse({"payments": response.status_code}, STATUS_SEEN_BY_CLIENT.get(response.status_code, 502))

else:

    @tracer.traced(name="ledger write")
    def write_ledger(outcome: str) -> None:
        if outcome == "broken":
            raise RuntimeError("ledger unavailable")

    @app.get("/charge/{outcome}")
    async def charge(outcome: str) -> JSONResponse:
        if outcome == "throttled":
            return JSONResponse({"message": "Too Many Requests"}, 429)
        if outcome == "flaky":
            try:
                write_ledger("broken")
            except RuntimeError:
                outcome = "ok"  # the retry succeeds
        write_ledger(outcome)
        return JSONResponse({"charged": True})


app.add_middleware(tracer.TracingMiddleware)
