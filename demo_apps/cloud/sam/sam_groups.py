"""A Fluoro group per deployed stack: the traces that pass through any of its entry points or functions.

The local cloud tells a running Fluoro (its query API, ``CloudSettings.collector_api``) about
each stack it deploys, as a team would make one group per service in X-Ray: the stack's name,
and a filter expression naming its API stages, functions, state machines and CDNs as the map
names them. Fluoro applies a group to every stored trace, so the order does not matter.
Deploying never fails for it: an unreachable Fluoro is one warning.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Final

import httpx

if TYPE_CHECKING:
    from demo_apps.cloud.sam.sam_deploy import Stack

_logger = logging.getLogger(__name__)
TIMEOUT_S: Final = 5.0


def stack_nodes(stack: Stack) -> list[str]:
    """The map names of the stack's entry points and compute, sorted."""
    names = {stage.name for api in stack.apis.values() for stage in api.stages.values()}
    names |= set(stack.functions.values()) | set(stack.machines.values())
    names |= {cdn.distribution.name for cdn, _ in stack.cdns.values()}
    return sorted(names)


def stack_expression(stack: Stack) -> str:
    """`service("a") OR service("b") ...`, names quoted as the filter language reads strings."""
    return " OR ".join(f"service({json.dumps(name)})" for name in stack_nodes(stack))


def announce_group(api_url: str, stack: Stack) -> bool:
    """Save the stack's group in the Fluoro at `api_url`; whether it took it."""
    nodes = stack_nodes(stack)
    if not nodes:
        return False
    body = {"name": stack.template.stack, "filter": stack_expression(stack)}
    try:
        answer = httpx.post(f"{api_url.rstrip('/')}/api/groups", json=body, timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:
        _logger.warning("fluoro: no group for stack %s: %s unreachable (%s)", body["name"], api_url, exc)
        return False
    if answer.status_code != 201:
        _logger.warning("fluoro: no group for stack %s: %s", body["name"], answer.text[:200])
        return False
    return True
