"""The project's import graph, read from its source with ``ast``.

grimp (which these tests used before) walks one package's directory; ``deepclust``'s
subpackages are mapped from three folders (setup.py), so it cannot see them. This reads
every module of ``deepclust`` by its installed name and records each import it makes
(module level or inside a function, as grimp does); imports of other distributions are
recorded by their top-level name (``torch``, ``fastapi``).
"""
from __future__ import annotations

import ast
from collections import deque
from functools import cached_property
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"deepclust": ROOT / "deepclust", "deepclust.app": ROOT / "app",
           "deepclust.models": ROOT / "models", "deepclust.worker": ROOT / "worker"}


def under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


class ImportGraph:
    def __init__(self) -> None:
        self.files: dict[str, Path] = {}
        for package, folder in FOLDERS.items():
            paths = [folder / "__init__.py"] if package == "deepclust" else folder.rglob("*.py")
            for path in paths:
                parts = list(path.relative_to(folder).with_suffix("").parts)
                if parts[-1] == "__init__":
                    parts.pop()
                self.files[".".join([package, *parts])] = path

    @cached_property
    def edges(self) -> dict[str, set[str]]:
        return {module: self._imports_of(module, path) for module, path in self.files.items()}

    def _resolve(self, name: str) -> str:
        """``name`` if it is one of ours, else its longest known parent, else its distribution."""
        if not under(name, "deepclust"):
            return name.split(".")[0]
        while name not in self.files and "." in name:
            name = name.rpartition(".")[0]
        return name

    def _imports_of(self, module: str, path: Path) -> set[str]:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {self._resolve(alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:  # `from pkg import module` imports the module
                    full = f"{base}.{alias.name}"
                    found.add(self._resolve(full if full in self.files else base))
        found.discard(module)
        return found

    def direct(self, package: str) -> list[tuple[str, str]]:
        """Every (importer, imported) pair of a direct import made by a module of ``package``."""
        return [(m, i) for m, imported in self.edges.items() if under(m, package) for i in sorted(imported)]

    def chain(self, importer: str, imported: str) -> list[str] | None:
        """The shortest import chain from any module of ``importer`` to any of ``imported``, or None."""
        start = [m for m in self.files if under(m, importer)]
        previous: dict[str, str | None] = {m: None for m in start}
        queue = deque(start)
        while queue:
            module = queue.popleft()
            if under(module, imported):
                path = [module]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])
                return path[::-1]
            for nxt in sorted(self.edges.get(module, ())):
                if nxt not in previous:
                    previous[nxt] = module
                    queue.append(nxt)
        return None
