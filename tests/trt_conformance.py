"""Helpers of tests/test_trt_conformance.py: the names real TensorRT releases offer, and the names
the project's code uses on TensorRT objects. Only the standard library here.

Real names (:func:`release_names`): the ``tensorrt-cu12-bindings`` wheel of a release (~1 MB,
fetched once with pip into ``~/.cache/oscar-edge/trt-bindings/<version>/``, see
:func:`fetch_wheel`). Its ``tensorrt_bindings/tensorrt.so`` cannot be imported without
libnvinfer, but pybind11 keeps every Python-visible name (classes, methods, properties, enum
members, keyword arguments) as a NUL-terminated string in the ``.rodata`` sections. The linker
merges a string into the tail of a longer one (``INPUT`` lives in ``CONDITIONAL_INPUT\\0``,
``serialize`` in ``plugins_to_serialize\\0``), so a name counts as present when it is a *suffix*
of a ``.rodata`` string; exact strings cannot be required. The pure-Python part of the module
(``nptype``, ``__version__``, ``Logger.Severity``) is read from ``__init__.py`` with ast.
Limits: a name is checked as existing somewhere in the release, not on a particular class, and a
short generic word (``name``, ``data``) is nearly always present.

Used names (:func:`collect_uses`): see the module docstring of tests/test_trt_conformance.py for
the rule.
"""
from __future__ import annotations

import ast
import bisect
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, FrozenSet, Iterable, List, Optional, Sequence, Set, Tuple

RELEASES = ("10.3.0", "10.13.3.9", "11.4.0.106")
PACKAGE = "tensorrt-cu12-bindings"
SO_MEMBER = "tensorrt_bindings/tensorrt.so"
INIT_MEMBER = "tensorrt_bindings/__init__.py"
# Attributes every Python object or module has; not TensorRT API.
UNIVERSAL = frozenset(dir(object())) | {"__name__", "__file__", "__spec__", "__loader__",
                                        "__package__", "__path__", "__dict__", "__doc__"}
_TAIL_IDENT = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*\Z")
_DOC_ARG = re.compile(rb":arg (\w+):")
# pip's words for "could not reach the index" (then the test skips); anything else fails.
_UNREACHABLE = ("from versions: none", "Could not fetch URL", "Max retries exceeded",
                "NewConnectionError", "Temporary failure in name resolution",
                "Network is unreachable", "ProxyError", "Connection refused", "timed out",
                "No route to host", "Name or service not known")


class RegistryUnreachable(RuntimeError):
    """pip could not reach the package index (the conformance test skips with this reason)."""


def cache_root() -> Path:
    """``$XDG_CACHE_HOME`` (default ``~/.cache``) ``/oscar-edge/trt-bindings``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "oscar-edge" / "trt-bindings"


def pip_download_command(version: str, dest: Path) -> List[str]:
    """pip download of the CPython 3.11 x86-64 Linux bindings wheel, whatever runs the test.
    10.3 ships ``manylinux_2_17`` wheels, 10.13 and 11.x ``manylinux_2_28``: both are allowed."""
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--python-version", "3.11", "--implementation", "cp",
            "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
            "--disable-pip-version-check", "-d", str(dest), f"{PACKAGE}=={version}"]


def fetch_wheel(version: str, cache: Optional[Path] = None, timeout: float = 300) -> Path:
    """The cached bindings wheel of ``version``, downloaded on first use.

    Raises:
        RegistryUnreachable: the index cannot be reached (no network).
        RuntimeError: pip ran against a reachable index and failed (e.g. no such release).
    """
    folder = (cache or cache_root()) / version
    found = sorted(folder.glob("*.whl"))
    if found:
        return found[0]
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=folder.parent))
    try:
        try:
            run = subprocess.run(pip_download_command(version, tmp), capture_output=True,
                                 text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RegistryUnreachable(f"pip download {PACKAGE}=={version} timed out "
                                      f"after {timeout:.0f} s") from None
        wheels = sorted(tmp.glob("*.whl"))
        if run.returncode != 0 or not wheels:
            text = (run.stdout + run.stderr).strip()
            last = text.splitlines()[-1] if text else f"exit status {run.returncode}"
            if any(word in text for word in _UNREACHABLE):
                why = next((line.strip() for line in text.splitlines()
                            if any(word in line for word in _UNREACHABLE[1:])), last)
                raise RegistryUnreachable(f"pip download {PACKAGE}=={version}: {why[:300]}")
            raise RuntimeError(f"pip download {PACKAGE}=={version} failed: {last}")
        folder.mkdir(exist_ok=True)
        target = folder / wheels[0].name
        os.replace(wheels[0], target)  # atomic: a concurrent run sees a whole wheel or none
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------ release names
def rodata_strings(elf: bytes) -> List[bytes]:
    """The NUL-separated byte strings of an ELF64 little-endian file's ``.rodata*`` sections."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise ValueError("not an ELF64 little-endian file")
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    names_off = headers[shstrndx][4]
    out: List[bytes] = []
    for name_idx, sh_type, _flags, _addr, offset, size in headers:
        end = elf.index(b"\0", names_off + name_idx)
        name = elf[names_off + name_idx:end].decode("ascii", "replace")
        if name.startswith(".rodata") and sh_type != 8:  # 8: SHT_NOBITS
            out.extend(elf[offset:offset + size].split(b"\0"))
    return out


def init_names(source: str) -> Set[str]:
    """Names ``tensorrt/__init__.py`` defines: functions, classes, assigned names and assigned
    attributes (``Logger.Severity = ...``, ``DataType.itemsize = ...``)."""
    names: Set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for sub in ast.walk(t):
                    if isinstance(sub, ast.Name):
                        names.add(sub.id)
                    elif isinstance(sub, ast.Attribute):
                        names.add(sub.attr)
        elif isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names if a.name != "*")
    return names


@dataclass
class ReleaseNames:
    """The names one release offers (see the module docstring for what "offers" means)."""

    version: str
    tails: List[str]                      # trailing identifier of each .rodata string
    python: FrozenSet[str] = frozenset()  # names defined in __init__.py
    args: FrozenSet[str] = frozenset()    # keyword arguments the docstrings document (":arg x:")
    _reversed: List[str] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._reversed = sorted({t[::-1] for t in self.tails})

    def has(self, name: str) -> bool:
        if name in self.python or name in UNIVERSAL:
            return True
        key = name[::-1]
        i = bisect.bisect_left(self._reversed, key)
        return i < len(self._reversed) and self._reversed[i].startswith(key)


def names_from_wheel(wheel: Path, version: str) -> ReleaseNames:
    with zipfile.ZipFile(wheel) as z:
        so = z.read(SO_MEMBER)
        init = z.read(INIT_MEMBER).decode("utf-8")
    tails, args = [], set(re.findall(r":arg (\w+):", init))
    for s in rodata_strings(so):
        m = _TAIL_IDENT.search(s)
        if m:
            tails.append(m.group(0).decode("ascii"))
        args.update(a.decode("ascii") for a in _DOC_ARG.findall(s))
    declared = re.search(r'^__version__\s*=\s*"([^"]+)"', init, re.M)
    if declared is None or declared.group(1) != version:
        raise ValueError(f"{wheel.name}: __init__.py declares __version__ "
                         f"{declared.group(1) if declared else None!r}, expected {version!r}")
    return ReleaseNames(version, tails, frozenset(init_names(init)), frozenset(args))


# ------------------------------------------------------------------------------ the collector
@dataclass(frozen=True)
class Use:
    """One name used on a TensorRT object. kind: attribute | keyword | getattr | hasattr |
    import. guarded: behind ``hasattr`` / ``getattr(obj, name, default)``."""

    name: str
    kind: str
    guarded: bool
    path: str
    line: int

    def where(self) -> str:
        return f"{self.path}:{self.line} ({self.kind}{', guarded' if self.guarded else ''})"


@dataclass
class _Func:
    key: int
    path: str
    name: str
    params: List[str]
    kwonly: List[str]
    is_method: bool
    class_key: Optional[Tuple[str, str]]


class _Scope:
    def __init__(self, key, parent: Optional["_Scope"], self_name: Optional[str] = None,
                 class_key: Optional[Tuple[str, str]] = None, func: Optional[_Func] = None,
                 is_class: bool = False, binds: Optional[Set[str]] = None) -> None:
        self.key, self.parent, self.self_name = key, parent, self_name
        self.class_key, self.func, self.is_class = class_key, func, is_class
        self.binds = binds  # names local to this scope (None: module, class)


def _bound_names(node: ast.AST) -> Set[str]:
    """Names a function or lambda binds: its parameters and the names it assigns (not those
    of nested functions, lambdas, classes or comprehensions)."""
    a = node.args
    out = {p.arg for p in a.posonlyargs + a.args + a.kwonlyargs}
    out |= {p.arg for p in (a.vararg, a.kwarg) if p is not None}
    todo = list(node.body) if isinstance(node.body, list) else [node.body]
    while todo:
        n = todo.pop()
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
            continue
        if isinstance(n, (ast.Lambda, ast.ListComp, ast.SetComp, ast.GeneratorExp,
                          ast.DictComp)):
            continue
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            out.add(n.id)
        elif isinstance(n, ast.alias):
            out.add((n.asname or n.name).split(".")[0])
        elif isinstance(n, ast.ExceptHandler) and n.name:
            out.add(n.name)
        todo.extend(ast.iter_child_nodes(n))
    return out


def _is_tensorrt(name: str) -> bool:
    return name == "tensorrt" or name.startswith("tensorrt.")


def _const_str(node: ast.AST) -> Optional[str]:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


class _Collector:
    """Flow-insensitive taint analysis over all given modules, iterated to a fixpoint."""

    def __init__(self, sources: Dict[str, str]) -> None:
        self.trees = {path: ast.parse(src, filename=path) for path, src in sources.items()}
        self.funcs: Dict[str, List[_Func]] = {}     # simple name -> definitions
        self.inits: Dict[str, List[_Func]] = {}     # class name -> its __init__
        self.names: Dict[object, Set[str]] = {}     # scope key -> tainted local names
        self.attrs: Set[Tuple[Tuple[str, str], str]] = set()   # (class, attr) of self.attr
        self.returns: Set[int] = set()              # _Func.key returning a TensorRT object
        self.uses: Dict[Tuple, Use] = {}
        self.changed = False
        for path, tree in self.trees.items():
            self._index(tree, path, None)

    # -- index of definitions ---------------------------------------------------------------
    def _index(self, node: ast.AST, path: str, class_key: Optional[Tuple[str, str]]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                self._index(child, path, (path, child.name))
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                static = any(isinstance(d, ast.Name) and d.id == "staticmethod"
                             for d in child.decorator_list)
                a = child.args
                f = _Func(id(child), path, child.name,
                          [p.arg for p in a.posonlyargs + a.args], [p.arg for p in a.kwonlyargs],
                          class_key is not None and not static, class_key)
                self.funcs.setdefault(child.name, []).append(f)
                if child.name == "__init__" and class_key is not None:
                    self.inits.setdefault(class_key[1], []).append(f)
                self._index(child, path, None)
            else:
                self._index(child, path, class_key)

    # -- taint --------------------------------------------------------------------------------
    def _mark(self, scope: _Scope, name: str) -> None:
        while scope.is_class and scope.parent is not None:
            scope = scope.parent
        bucket = self.names.setdefault(scope.key, set())
        if name not in bucket:
            bucket.add(name)
            self.changed = True

    def _lookup(self, scope: Optional[_Scope], name: str) -> bool:
        """Python's lexical rule: the innermost scope binding ``name`` decides."""
        while scope is not None:
            if name in self.names.get(scope.key, ()):
                return True
            if scope.binds is not None and name in scope.binds:
                return False
            scope = scope.parent
        return False

    def _self_scope(self, scope: Optional[_Scope]) -> Optional[_Scope]:
        while scope is not None and scope.self_name is None:
            scope = scope.parent
        return scope

    def _callees(self, func: ast.AST) -> List[Tuple[_Func, int]]:
        """Project definitions a call may reach, with the number of leading parameters the
        call does not pass (``self``)."""
        name = func.id if isinstance(func, ast.Name) else \
            func.attr if isinstance(func, ast.Attribute) else None
        if name is None:
            return []
        out = [(f, 1 if f.is_method else 0) for f in self.funcs.get(name, [])]
        out += [(f, 1) for f in self.inits.get(name, [])]
        return out

    def tainted(self, node: Optional[ast.AST], scope: _Scope) -> bool:
        if node is None:
            return False
        if isinstance(node, ast.Name):
            return self._lookup(scope, node.id)
        if isinstance(node, ast.Attribute):
            owner = self._self_scope(scope)
            if owner is not None and isinstance(node.value, ast.Name) and \
                    node.value.id == owner.self_name and (owner.class_key, node.attr) in self.attrs:
                return True
            return self.tainted(node.value, scope)
        if isinstance(node, ast.Call):
            f = node.func
            if self.tainted(f, scope):
                return True
            if isinstance(f, ast.Name) and f.id == "getattr" and node.args:
                return self.tainted(node.args[0], scope)
            fname = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) \
                else ""
            if fname in ("import_module", "__import__") and node.args and \
                    _is_tensorrt(_const_str(node.args[0]) or ""):
                return True
            return any(c.key in self.returns for c, _ in self._callees(f))
        if isinstance(node, (ast.Subscript, ast.Starred, ast.Await, ast.NamedExpr)):
            return self.tainted(node.value, scope)
        if isinstance(node, ast.IfExp):
            return self.tainted(node.body, scope) or self.tainted(node.orelse, scope)
        if isinstance(node, ast.BoolOp):
            return any(self.tainted(v, scope) for v in node.values)
        if isinstance(node, ast.Tuple):  # ``return config, flag``: unpacked by the caller
            return any(self.tainted(v, scope) for v in node.elts)
        return False

    def _assign(self, target: ast.AST, value: Optional[ast.AST], hot: bool,
                scope: _Scope) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
                for t, v in zip(target.elts, value.elts):
                    self._assign(t, v, self.tainted(v, scope), scope)
            else:
                for t in target.elts:
                    self._assign(t, None, hot, scope)
        elif isinstance(target, ast.Starred):
            self._assign(target.value, None, hot, scope)
        elif hot and isinstance(target, ast.Name):
            self._mark(scope, target.id)
        elif hot and isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
            owner = self._self_scope(scope)
            if owner is not None and target.value.id == owner.self_name:
                key = (owner.class_key, target.attr)
                if key not in self.attrs:
                    self.attrs.add(key)
                    self.changed = True

    # -- uses ---------------------------------------------------------------------------------
    def _use(self, name: str, kind: str, guarded: bool, node: ast.AST) -> None:
        path = self._path
        key = (name, kind, path, node.lineno, getattr(node, "col_offset", 0))
        if key not in self.uses:
            self.uses[key] = Use(name, kind, guarded, path, node.lineno)

    @staticmethod
    def _guards_of(test: ast.AST) -> Set[Tuple[str, str]]:
        """(dump of object, name) for each ``hasattr(obj, "name")`` that must hold in the body."""
        out: Set[Tuple[str, str]] = set()
        parts = test.values if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And) \
            else [test]
        for p in parts:
            if isinstance(p, ast.Call) and isinstance(p.func, ast.Name) and \
                    p.func.id == "hasattr" and len(p.args) == 2 and _const_str(p.args[1]):
                out.add((ast.dump(p.args[0]), _const_str(p.args[1])))
        return out

    def _expr(self, node: ast.AST, scope: _Scope, guards: FrozenSet) -> None:
        """Record the uses inside an expression and pass TensorRT arguments to callees."""
        if isinstance(node, ast.Lambda):
            inner = _Scope(id(node), scope, binds=_bound_names(node))
            self._expr(node.body, inner, guards)
            return
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            targets = {n.id for g in node.generators for n in ast.walk(g.target)
                       if isinstance(n, ast.Name)}
            inner = _Scope(id(node), scope, binds=targets)
            for i, gen in enumerate(node.generators):
                # the first iterable is evaluated in the enclosing scope
                self._expr(gen.iter, scope if i == 0 else inner, guards)
                self._assign(gen.target, None,
                             self.tainted(gen.iter, scope if i == 0 else inner), inner)
                for cond in gen.ifs:
                    self._expr(cond, inner, guards)
            parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            for p in parts:
                self._expr(p, inner, guards)
            return
        if isinstance(node, ast.NamedExpr):
            self._assign(node.target, node.value, self.tainted(node.value, scope), scope)
        if isinstance(node, ast.Attribute) and self.tainted(node.value, scope):
            self._use(node.attr, "attribute", (ast.dump(node.value), node.attr) in guards,
                      node)
        if isinstance(node, ast.Call):
            f = node.func
            if self.tainted(f, scope):
                for kw in node.keywords:
                    if kw.arg is not None:
                        self._use(kw.arg, "keyword", False, kw.value)
            elif isinstance(f, ast.Name) and f.id in ("getattr", "hasattr") and \
                    len(node.args) >= 2 and _const_str(node.args[1]) and \
                    self.tainted(node.args[0], scope):
                guarded = f.id == "hasattr" or len(node.args) >= 3
                self._use(_const_str(node.args[1]), f.id, guarded, node)
            else:
                self._pass_arguments(node, scope)
        for child in ast.iter_child_nodes(node):
            self._expr(child, scope, guards)

    def _pass_arguments(self, call: ast.Call, scope: _Scope) -> None:
        hot_pos = [i for i, a in enumerate(call.args) if self.tainted(a, scope)]
        hot_kw = [k.arg for k in call.keywords if k.arg and self.tainted(k.value, scope)]
        if not hot_pos and not hot_kw:
            return
        for f, skip in self._callees(call.func):
            for i in hot_pos:
                if skip + i < len(f.params):
                    self._mark(_Scope(f.key, None), f.params[skip + i])
            for k in hot_kw:
                if k in f.params or k in f.kwonly:
                    self._mark(_Scope(f.key, None), k)

    # -- statements ---------------------------------------------------------------------------
    def _body(self, stmts: Sequence[ast.stmt], scope: _Scope, guards: FrozenSet) -> None:
        for s in stmts:
            self._stmt(s, scope, guards)

    def _stmt(self, node: ast.stmt, scope: _Scope, guards: FrozenSet) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for d in node.decorator_list + node.args.defaults + \
                    [d for d in node.args.kw_defaults if d is not None]:
                self._expr(d, scope, guards)
            func = next(f for f in self.funcs[node.name] if f.key == id(node))
            parent = scope.parent if scope.is_class else scope
            self_name = func.params[0] if func.is_method and func.params else None
            inner = _Scope(id(node), parent, self_name, scope.class_key if scope.is_class
                           else None, func, binds=_bound_names(node))
            self._body(node.body, inner, frozenset())
            return
        if isinstance(node, ast.ClassDef):
            for b in node.bases + node.decorator_list:
                self._expr(b, scope, guards)
            inner = _Scope(id(node), scope, class_key=(self._path, node.name), is_class=True)
            self._body(node.body, inner, guards)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            self._import(node, scope)
            return
        if isinstance(node, ast.If):
            self._expr(node.test, scope, guards)
            self._body(node.body, scope, guards | self._guards_of(node.test))
            self._body(node.orelse, scope, guards)
            return
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            value = node.value
            if value is not None:
                self._expr(value, scope, guards)
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            hot = self.tainted(value, scope)
            for t in targets:
                self._expr(t, scope, guards)
                self._assign(t, value, hot, scope)
            return
        if isinstance(node, (ast.For, ast.AsyncFor)):
            self._expr(node.iter, scope, guards)
            self._assign(node.target, None, self.tainted(node.iter, scope), scope)
        if isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                self._expr(item.context_expr, scope, guards)
                if item.optional_vars is not None:
                    self._assign(item.optional_vars, None,
                                 self.tainted(item.context_expr, scope), scope)
        if isinstance(node, ast.Return) and node.value is not None and scope.func is not None:
            if self.tainted(node.value, scope) and scope.func.key not in self.returns:
                self.returns.add(scope.func.key)
                self.changed = True
        for field_name, value in ast.iter_fields(node):
            if field_name in ("iter", "items") and isinstance(node, (ast.For, ast.AsyncFor,
                                                                     ast.With, ast.AsyncWith)):
                continue
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, ast.stmt):
                    self._stmt(item, scope, guards)
                elif isinstance(item, ast.expr):
                    self._expr(item, scope, guards)
                elif isinstance(item, ast.excepthandler):
                    self._body(item.body, scope, guards)

    def _import(self, node: ast.stmt, scope: _Scope) -> None:
        if isinstance(node, ast.Import):
            for a in node.names:
                if _is_tensorrt(a.name):
                    if a.asname:
                        for part in a.name.split(".")[1:]:
                            self._use(part, "import", False, node)
                    self._mark(scope, a.asname or a.name.split(".")[0])
        elif node.module and _is_tensorrt(node.module) and not node.level:
            for part in node.module.split(".")[1:]:
                self._use(part, "import", False, node)
            for a in node.names:
                if a.name != "*":
                    self._use(a.name, "import", False, node)
                    self._mark(scope, a.asname or a.name)

    def run(self) -> List[Use]:
        for _ in range(50):
            self.changed = False
            for path, tree in self.trees.items():
                self._path = path
                self._body(tree.body, _Scope(path, None), frozenset())
            if not self.changed:
                break
        else:  # pragma: no cover - a bug in the analysis, not in the project
            raise RuntimeError("the TensorRT use collector did not reach a fixpoint")
        return sorted(self.uses.values(), key=lambda u: (u.path, u.line, u.name, u.kind))


def collect_uses(sources: Dict[str, str]) -> List[Use]:
    """Every name used on a TensorRT object in ``sources`` (path -> Python source)."""
    return _Collector(sources).run()


def project_sources(repo: Path, folders: Iterable[str], skip: Iterable[str] = ()) -> Dict[str, str]:
    """path (relative to ``repo``) -> source of every .py file under ``folders``."""
    skipped = set(skip)
    out: Dict[str, str] = {}
    for folder in folders:
        for p in sorted((repo / folder).rglob("*.py")):
            rel = p.relative_to(repo).as_posix()
            if rel not in skipped and ".venv" not in p.parts:
                out[rel] = p.read_text(encoding="utf-8")
    return out


# ------------------------------------------------------------------------------ test doubles
@dataclass(frozen=True)
class Offered:
    """A name a test double offers: class member, instance attribute or keyword parameter."""

    name: str
    kind: str   # member | instance attribute | keyword parameter
    owner: str  # Class.method or Class
    line: int

    def where(self) -> str:
        return f"{self.owner} line {self.line} ({self.kind})"


def _walk_own(func: ast.AST):
    """ast.walk of a method's body without nested classes and functions (their ``self`` is
    another object)."""
    todo = list(ast.iter_child_nodes(func))
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        yield node
        todo.extend(ast.iter_child_nodes(node))


def double_offers(source: str, roots: Sequence[str], skip: Sequence[str] = (),
                  setup_constructors: Sequence[str] = ()) -> List[Offered]:
    """The public names offered by every class of ``source`` defined at any depth, except
    classes named in ``skip`` (and classes inside them): class members, ``self.x`` attributes,
    and keyword-capable parameters. ``roots`` are the classes standing for the module; their
    own names and the constructors in ``setup_constructors`` (test set-up) are not offered."""
    out: List[Offered] = []

    def public(name: str) -> bool:
        return not name.startswith("_")

    def visit(node: ast.AST, skipping: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                skip_this = skipping or child.name in skip
                if not skip_this:
                    members(child)
                visit(child, skip_this)
            else:
                visit(child, skipping)

    def members(cls: ast.ClassDef) -> None:
        for item in cls.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if public(item.name):
                    out.append(Offered(item.name, "member", cls.name, item.lineno))
                owner = f"{cls.name}.{item.name}"
                a = item.args
                protocol = item.name.startswith("__") and item.name not in ("__init__",
                                                                            "__call__")
                if owner not in setup_constructors and not protocol:
                    static = any(isinstance(d, ast.Name) and d.id == "staticmethod"
                                 for d in item.decorator_list)
                    # ``self`` is the first of posonlyargs + args; positional-only
                    # parameters offer no keyword
                    positional = a.args[1:] if a.args and not a.posonlyargs and not static \
                        else a.args
                    for p in positional + a.kwonlyargs:
                        if public(p.arg):
                            out.append(Offered(p.arg, "keyword parameter", owner, item.lineno))
                first = (a.posonlyargs + a.args)[:1]
                selfname = first[0].arg if first else None
                for sub in _walk_own(item):
                    if isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Store) and \
                            isinstance(sub.value, ast.Name) and sub.value.id == selfname and \
                            public(sub.attr):
                        out.append(Offered(sub.attr, "instance attribute", cls.name, sub.lineno))
            elif isinstance(item, ast.ClassDef):
                if public(item.name) and cls.name in roots:
                    out.append(Offered(item.name, "member", cls.name, item.lineno))
            elif isinstance(item, (ast.Assign, ast.AnnAssign)):
                targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                for t in targets:
                    for sub in ast.walk(t):
                        if isinstance(sub, ast.Name) and public(sub.id):
                            out.append(Offered(sub.id, "member", cls.name, item.lineno))

    visit(ast.parse(source), False)
    return out


# ------------------------------------------------------------------------------ the checks
def check_uses(uses: Sequence[Use], releases: Dict[str, ReleaseNames],
               version_dependent: Dict[str, str]) -> List[str]:
    """One line per problem (see tests/test_trt_conformance.py for the rules)."""
    problems: List[str] = []
    for u in uses:
        missing = [v for v, r in releases.items() if not r.has(u.name)]
        if u.kind == "keyword":
            undocumented = [v for v, r in releases.items() if u.name not in r.args]
            if undocumented:
                problems.append(f"TensorRT {', '.join(undocumented)}: no method documents a "
                                f"keyword argument {u.name!r}: {u.where()}")
        elif not u.guarded and missing:
            problems.append(f"TensorRT {', '.join(missing)} has no {u.name!r}: {u.where()}")
        elif u.guarded and len(missing) == len(releases):
            problems.append(f"no TensorRT release has {u.name!r} (the guard hides a misspelt "
                            f"name): {u.where()}")
        elif u.guarded and missing and u.name not in version_dependent:
            problems.append(f"TensorRT {', '.join(missing)} has no {u.name!r}, used behind a "
                            f"guard: add it to VERSION_DEPENDENT with a reason: {u.where()}")
    for name in version_dependent:
        mine = [u for u in uses if u.name == name]
        if not mine:
            problems.append(f"VERSION_DEPENDENT lists {name!r}, which no TensorRT-using code "
                            "uses any more: remove it")
        for u in mine:
            if not u.guarded:
                problems.append(f"{name!r} is version-dependent (VERSION_DEPENDENT) but used "
                                f"without hasattr / getattr(..., default): {u.where()}")
    return problems


def check_offers(offers: Sequence[Offered], releases: Dict[str, ReleaseNames]
                 ) -> Tuple[List[str], List[str]]:
    """(problems, notes): a name no release has is a problem; a keyword parameter must be
    documented (":arg name:") by some release; a name only some releases have is a note."""
    problems: List[str] = []
    notes: List[str] = []
    for o in offers:
        if o.kind == "keyword parameter":
            have = [v for v, r in releases.items() if o.name in r.args]
            what = "documents a keyword argument"
        else:
            have = [v for v, r in releases.items() if r.has(o.name)]
            what = "has"
        if not have:
            problems.append(f"no TensorRT release {what} {o.name!r}: {o.where()}")
        elif len(have) < len(releases):
            notes.append(f"{o.name!r} ({o.where()}): only TensorRT {', '.join(have)}")
    return problems, notes
