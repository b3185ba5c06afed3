"""Groups: saved filter expressions with names, and the `group` parameter every query takes.

Unlike X-Ray's, a group applies to every stored trace, not only to those that arrive after it
is made: it is its filter, parsed again at each query (cheap next to the query). A query
given both a group and a filter gets the traces matching both.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, params
from starlette.concurrency import run_in_threadpool

from collector.api.params import FILTER_HELP, BadParameter, parse_optional_filter
from collector.api.problems import SAVING_GROUP, UNKNOWN_GROUP
from collector.capped_body import BodyTimeout, BodyTooLarge, read_capped
from collector.storage.protocols import Group, GroupStore
from spanlang import filter_ast
from spanlang.filter_parser import MAX_EXPRESSION_CHARS, parse_filter

MAX_GROUPS: Final = 200
MAX_BODY_BYTES: Final = 16 * 1024
NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.:/-]{0,63}")
# The body's schema, for the document (the route reads the body itself, capped).
GROUP_BODY: Final = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": f"^{NAME_PATTERN.pattern}$"},
        "filter": {"type": "string", "minLength": 1, "maxLength": MAX_EXPRESSION_CHARS},
    },
    "required": ["name", "filter"],
    "additionalProperties": False,
}
GROUP_HELP: Final = "a saved group's name: only the traces its filter expression matches"


@dataclass(frozen=True, slots=True)
class GroupsPage:
    groups: tuple[Group, ...]


def valid_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise BadParameter(
            "a group's name is 1 to 64 letters, digits, spaces and _ . : / -, starting with a letter or digit"
        )
    return name


def group_from(body: bytes) -> Group:
    """The group a POST body describes: {"name": ..., "filter": ...}."""
    try:
        fields: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested past Python's limit
        raise BadParameter(f"the body is not JSON: {str(exc)[:200]}") from None
    if not isinstance(fields, dict) or set(fields) - {"name", "filter"}:
        raise BadParameter('the body is a JSON object with "name" and "filter", and nothing else')
    name, text = valid_name(fields.get("name")), fields.get("filter")
    if not isinstance(text, str) or not text.strip():
        raise BadParameter('"filter" is a filter expression (a string), e.g. service("orders") { fault }')
    parse_filter(text)  # FilterError: answered 400 with the column
    return Group(name, text.strip(), time.time_ns())


def selected(
    request: Request,
    filter: Annotated[str | None, Query(description=FILTER_HELP)] = None,
    group: Annotated[str | None, Query(description=GROUP_HELP, max_length=64)] = None,
) -> filter_ast.Expr | None:
    """A dependency: the expression a request's `filter` and `group` select, None for everything
    (the groups are the app's: ``app.state.groups``)."""
    given = parse_optional_filter(filter)
    if not group:
        return given
    groups: GroupStore = request.app.state.groups
    saved = groups.group(group)
    if saved is None:
        raise BadParameter(f"there is no group named {group!r}")
    expression = parse_filter(saved.filter)
    return expression if given is None else filter_ast.And((expression, given))


Selection = Annotated[filter_ast.Expr | None, Depends(selected)]


def group_routes(groups: GroupStore, guarded: Sequence[params.Depends]) -> APIRouter:
    router = APIRouter(dependencies=guarded)

    @router.get("/api/groups", summary="Every saved group, by name")
    def list_groups() -> GroupsPage:
        return GroupsPage(tuple(groups.groups()))

    @router.get("/api/groups/{name}", summary="One group", responses=UNKNOWN_GROUP)
    def one_group(name: str) -> Group:
        found = groups.group(name)
        if found is None:
            raise HTTPException(404, f"there is no group named {name!r}")
        return found

    @router.post(
        "/api/groups",
        status_code=201,
        summary="Save a group (a new name, or a new filter for a name)",
        responses=SAVING_GROUP,
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": GROUP_BODY}}}},
    )
    async def save_group(request: Request) -> Group:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise HTTPException(415, "send the group as application/json")
        try:
            group = group_from(await read_capped(request, MAX_BODY_BYTES))
        except BodyTooLarge as exc:
            raise HTTPException(413, f"a group is at most {MAX_BODY_BYTES} bytes: {exc}") from None
        except BodyTimeout as exc:
            raise HTTPException(408, str(exc)) from None
        known = {g.name for g in await run_in_threadpool(groups.groups)}
        if group.name not in known and len(known) >= MAX_GROUPS:
            raise HTTPException(409, f"there are {MAX_GROUPS} groups already: delete one first")
        await run_in_threadpool(groups.save_group, group)
        return group

    @router.delete("/api/groups/{name}", status_code=204, summary="Delete a group", responses=UNKNOWN_GROUP)
    def delete_group(name: str) -> Response:
        if not groups.delete_group(name):
            raise HTTPException(404, f"there is no group named {name!r}")
        return Response(status_code=204)

    return router
