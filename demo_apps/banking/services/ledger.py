"""The private ledger: a service only the withdraw function's security group may reach."""

import itertools

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

_ids = itertools.count(1)


async def entries(request: Request) -> JSONResponse:
    entry = await request.json()
    return JSONResponse({"id": next(_ids), **entry}, status_code=201)


app = Starlette(routes=[Route("/entries", entries, methods=["POST"])])
