"""Layers as AWS unpacks them: published versions merged into /opt in order, imported after the code."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from demo_apps.cloud.lambdas.lambda_config import DeployError, FunctionConfig, validate
from demo_apps.cloud.lambdas.lambda_service import LambdaService
from demo_apps.cloud.lambdas.layers import SITE_PACKAGES
from demo_apps.cloud.lambdas.mount_namespace import probe
from demo_apps.tracer_layer import publish_tracer_layer
from tests.integration.lambda_functions import CODE, config

PRIVATE_OPT = probe() is None  # /opt is the layers' own where the environment has a namespace


def layer(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def test_layers_merge_in_order_and_import_after_the_code(service: LambdaService, tmp_path: Path) -> None:
    first = service.layers.publish(
        "first", layer(tmp_path / "a", {"python/shared.py": "VALUE = 'first'\n", "python/only_a.py": "VALUE = 'a'\n"})
    )
    archive = tmp_path / "b.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("python/shared.py", "VALUE = 'second'\n")
        out.writestr(f"{SITE_PACKAGES}/packaged.py", "VALUE = 'site-packages'\n")
    second = service.layers.publish("second", archive)
    assert first.endswith(":layer:first:1") and second.endswith(":layer:second:1")
    contents = (service.layers.content(first), service.layers.content(second))
    service.deploy(config("layered", "module_files", layers=contents))
    found = service.invoke("layered", {"modules": ["shared", "only_a", "packaged", "tracer"]})
    assert found["shared"][1] == "second" and found["only_a"][1] == "a"  # the later layer's file wins
    assert found["packaged"][1] == "site-packages"
    if PRIVATE_OPT:
        assert found["shared"][0] == "/opt/python/shared.py"
        assert found["packaged"][0] == f"/opt/{SITE_PACKAGES}/packaged.py"


def test_a_layer_version_is_a_snapshot_taken_at_publish(service: LambdaService, tmp_path: Path) -> None:
    folder = layer(tmp_path / "lib", {"python/shared.py": "VALUE = 1\n"})
    one = service.layers.publish("lib", folder)
    (folder / "python" / "shared.py").write_text("VALUE = 2\n")
    two = service.layers.publish("lib", folder)
    assert one.endswith(":lib:1") and two.endswith(":lib:2")
    service.deploy(config("old", "module_files", layers=(service.layers.content(one),)))
    assert service.invoke("old", {"modules": ["shared"]})["shared"][1] == 1


def test_the_demo_tracer_layer_is_what_functions_import(service: LambdaService) -> None:
    arn = publish_tracer_layer(service.layers)
    assert arn.endswith(":layer:fluoro-tracer:1")
    service.deploy(config("traced", "module_files", layers=(service.layers.content(arn),)))
    found = service.invoke("traced", {"modules": ["tracer"]})
    expected = "/opt/python/tracer/__init__.py" if PRIVATE_OPT else "/python/tracer/__init__.py"
    assert found["tracer"][0].endswith(expected)


def test_bad_layers_are_refused(service: LambdaService, tmp_path: Path) -> None:
    slip = tmp_path / "slip.zip"
    with zipfile.ZipFile(slip, "w") as out:
        out.writestr("../../escaped.py", "x = 1\n")
    with pytest.raises(DeployError, match="leaves the layer's folder"):
        service.layers.publish("slip", slip)
    with pytest.raises(DeployError, match=r"neither a \.zip archive nor a folder"):
        service.layers.publish("missing", tmp_path / "nope")
    with pytest.raises(DeployError, match="is not 1-140"):
        service.layers.publish("bad name!", tmp_path)
    with pytest.raises(DeployError, match="does not exist"):
        service.layers.content("arn:aws:lambda:us-east-1:123456789012:layer:never:1")
    six = tuple(layer(tmp_path / f"l{i}", {"python/m.py": ""}) for i in range(6))
    with pytest.raises(DeployError, match="6 layers, over the 5"):
        validate(FunctionConfig(name="many", handler="functions.echo", code_dir=CODE, layers=six), 10)
    big = layer(tmp_path / "big", {"python/big.py": "x" * 300_000})
    definition = FunctionConfig(name="big", handler="functions.echo", code_dir=CODE, layers=(big,))
    with pytest.raises(DeployError, match="code and layers are"):
        validate(definition, 10, max_unzipped_bytes=300_000)
    in_layer = FunctionConfig(
        name="x",
        handler="only_in_layer.handler",
        code_dir=tmp_path / "l0",
        layers=(layer(tmp_path / "h", {"python/only_in_layer.py": "def handler(e, c):\n    return 1\n"}),),
    )
    validate(in_layer, 10)  # a handler may live in a layer, as the runtime imports from /opt/python
