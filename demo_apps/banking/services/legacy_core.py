"""The legacy core banking system: statements as XML, which API Gateway's response template turns into JSON."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def statement(request: Request) -> Response:
    account = request.path_params["id"]
    if not account.startswith("acc-"):
        return Response("<error>unknown account</error>", status_code=404, media_type="application/xml")
    lines = "".join(f"<line><n>{n}</n><amount>-{10 * n}.00</amount></line>" for n in range(1, 4))
    xml = f"<statement><account>{account}</account><lines>{lines}</lines></statement>"
    return Response(xml, media_type="application/xml")


app = Starlette(routes=[Route("/statements/{id}", statement)])
