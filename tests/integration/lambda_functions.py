"""The test functions of tests/integration/lambda_code/functions.py, as the local Lambda deploys them."""

from __future__ import annotations

from pathlib import Path

from demo_apps.cloud.lambdas.lambda_config import FunctionConfig

CODE = Path(__file__).parent / "lambda_code"


def config(name: str, handler: str, **settings: object) -> FunctionConfig:
    """`functions.<handler>` deployed as `name`, with any other FunctionConfig settings."""
    return FunctionConfig(name=name, handler=f"functions.{handler}", code_dir=CODE, **settings)  # type: ignore[arg-type]
