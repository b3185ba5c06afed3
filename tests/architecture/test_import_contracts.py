"""The allow-list contract types break on what they do not allow (and keep what they do)."""

from __future__ import annotations

import grimp

from tests.architecture.import_contracts import AllowedExternalContract, AllowedInternalContract


def graph_of(*imports: tuple[str, str]) -> grimp.ImportGraph:
    graph = grimp.ImportGraph()
    for package in ("app", "lib"):
        graph.add_module(package)
    for importer, imported in imports:
        graph.add_import(importer=importer, imported=imported)
    return graph


def test_an_internal_module_not_on_the_list_breaks_the_contract() -> None:
    contract = AllowedInternalContract(
        "app uses lib's api",
        {"root_packages": ["app", "lib"]},
        {"source_modules": ["app"], "target_package": "lib", "allowed_modules": ["lib", "lib.names"]},
    )
    graph = graph_of(("app.a", "lib"), ("app.a", "lib.names"), ("app.b.c", "lib.new_module"), ("app", "os"))
    check = contract.check(graph, verbose=False)
    assert not check.kept
    assert check.metadata["violations"] == [("app.b.c", "lib.new_module")]
    kept = contract.check(graph_of(("app.a", "lib"), ("app.a", "lib.names")), verbose=False)
    assert kept.kept


def test_a_third_party_package_not_on_the_list_breaks_the_contract() -> None:
    contract = AllowedExternalContract(
        "lib depends on otel only",
        {"root_packages": ["lib"]},
        {"source_modules": ["lib"], "allowed_packages": ["opentelemetry"]},
    )
    graph = graph_of(("lib.a", "opentelemetry"), ("lib.a", "json"), ("lib.b", "duckdb"), ("lib.b", "lib.a"))
    check = contract.check(graph, verbose=False)
    assert check.metadata["violations"] == [("lib.b", "duckdb")]
