"""No import cycle in keras_adaptive: neither at module level nor inside functions. The base
class reads the fast-path declarations (backend/dispatch.py) without importing a concrete
optimizer, and no backend module imports one."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1] / "keras_adaptive"


def import_graph() -> dict:
    """module -> the keras_adaptive modules it imports (`from pkg import mod` counts as `pkg.mod`)."""
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def cycles(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_backend_module_imports_an_optimizer_class():
    graph = import_graph()
    concrete = {"keras_adaptive." + m for m in ("sgd", "adagrad", "rmsprop", "adadelta", "adam", "nadam")}
    for module, imported in graph.items():
        if module.startswith("keras_adaptive.backend.") and module != "keras_adaptive.backend.fast_paths":
            assert not imported & concrete, f"{module} imports {sorted(imported & concrete)}"
