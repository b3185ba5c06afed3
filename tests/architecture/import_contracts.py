"""import-linter contract types that allow, rather than forbid (contracts in pyproject.toml).

A forbidden list lets every module it does not name through, so a new module is allowed by
default. These name what may be imported instead:

- ``allowed_internal``: the modules of `source_modules` may import, of `target_package`, only
  `allowed_modules` (exactly those modules, not their submodules);
- ``allowed_external``: the modules of `source_modules` may import the standard library, the
  project's own packages and, of third-party packages, only `allowed_packages`.

Both take `except_modules`: modules of the sources another contract rules instead (the
tracer's pytest plugin, which runs under pytest, not in the traced application).
"""

from __future__ import annotations

import sys
from typing import Any

from importlinter import Contract, ContractCheck, fields, output

Violation = tuple[str, str]  # (importer, imported)


def _modules_of(graph: Any, packages: list[str], excepted: Any = ()) -> set[str]:
    found: set[str] = set()
    for package in packages:
        found |= {package, *graph.find_descendants(package)}
    excepted_names = [str(module) for module in excepted or ()]
    return {m for m in found if not any(m == e or m.startswith(e + ".") for e in excepted_names)}


def _render(check: ContractCheck, what: str) -> None:
    for importer, imported in check.metadata["violations"]:
        output.print_error(f"{importer} imports {imported}: {what}")
        output.new_line()


class AllowedInternalContract(Contract):
    source_modules = fields.ListField(subfield=fields.StringField())
    target_package = fields.StringField()
    allowed_modules = fields.ListField(subfield=fields.StringField())
    except_modules = fields.ListField(subfield=fields.StringField(), required=False)

    def check(self, graph: Any, verbose: bool) -> ContractCheck:
        target = str(self.target_package)
        allowed = {str(m) for m in self.allowed_modules}  # type: ignore[attr-defined]
        violations: list[Violation] = []
        sources = _modules_of(graph, [str(m) for m in self.source_modules], self.except_modules)  # type: ignore[attr-defined]
        for importer in sorted(sources):
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                inside = imported == target or imported.startswith(target + ".")
                if inside and imported not in allowed:
                    violations.append((importer, imported))
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        _render(check, f"only {sorted(str(m) for m in self.allowed_modules)} may be imported")  # type: ignore[attr-defined]


class AllowedExternalContract(Contract):
    source_modules = fields.ListField(subfield=fields.StringField())
    allowed_packages = fields.ListField(subfield=fields.StringField())
    except_modules = fields.ListField(subfield=fields.StringField(), required=False)

    def check(self, graph: Any, verbose: bool) -> ContractCheck:
        own = {module.split(".")[0] for module in self.session_options["root_packages"]}
        allowed = {str(p) for p in self.allowed_packages} | own | set(sys.stdlib_module_names) | {"__future__"}  # type: ignore[attr-defined]
        violations: list[Violation] = []
        sources = _modules_of(graph, [str(m) for m in self.source_modules], self.except_modules)  # type: ignore[attr-defined]
        for importer in sorted(sources):
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                if imported.split(".")[0] not in allowed:
                    violations.append((importer, imported))
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        _render(check, "a third-party package this code may not depend on")
