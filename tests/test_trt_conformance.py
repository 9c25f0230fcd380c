"""TensorRT Python API conformance: every name the project's code uses on TensorRT objects, and
every name the TensorRT test double offers, checked against the real Python bindings of
TensorRT 10.3 (JetPack 6), 10.13 (JetPack 7.0/7.1) and 11.4 (current), without TensorRT or a GPU.

Real names: the ``tensorrt-cu12-bindings`` wheels (~1 MB each, downloaded once into
``~/.cache/oscar-edge/trt-bindings/``; the tests that need them skip, saying why, when the package
index cannot be reached). The strings of ``tensorrt.so`` and the ``__init__.py`` give every
Python-visible name of a release, and its docstrings the documented keyword arguments
(``:arg stream_handle:``); see tests/trt_conformance.py for how, and for the limits (a name is
checked as existing in the release, not on a particular class).

Which uses count as "on TensorRT objects" (tests/trt_conformance.py, ``collect_uses``): a
flow-insensitive taint analysis over every .py file of oscar_edge/, export/, benchmarks/ and
tests/, iterated to a fixpoint.

* Seeds: names bound by ``import tensorrt [as x]`` / ``from tensorrt import y``, and the result of
  ``importlib.import_module("tensorrt")`` / ``__import__("tensorrt")``.
* A value is TensorRT-derived when it is an attribute, subscript or call result of a derived
  value (``trt.Builder(logger)``, ``builder.create_network()``, ``network.get_input(0)``), the
  result of ``getattr(derived, ...)``, either branch of ``a if c else b`` / ``a or b``, an
  element when iterating a derived value, or the result of a project function that returns a
  derived value (``import_tensorrt()``, in any module).
* It flows through assignments (also tuple assignments), ``self.x`` attributes within a class,
  and arguments of calls to project functions (resolved by name, in every scanned module):
  ``build_engine(trt, ...)``, ``_read_timing_cache(config, ...)``, ``TrtBackend(..., trt=...)``.
  Lexical scoping is respected (a comprehension's loop variable hides an outer name).
* Recorded: the attribute name of every ``derived.name`` (read or written), the keyword names of
  every call of a derived value, and the constant name of ``getattr`` / ``hasattr`` on a derived
  value. A use is *guarded* when it is ``hasattr(obj, "n")``, ``getattr(obj, "n", default)``, or
  ``obj.n`` inside ``if hasattr(obj, "n"):``.

Rules: an unguarded name must exist in every release; a keyword must be documented as a keyword
argument by every release; a guarded name must exist in at least one release (else the guard
hides a misspelling), and if some release lacks it, it must be listed in ``VERSION_DEPENDENT``
below with its reason; every listed name must still be used, and only behind a guard.

The TensorRT test double (tests/trt_test_double.py, ``FakeTensorRT`` and the objects it returns;
``FakeCudart`` stands for cuda-python and is not checked) may offer no name that no real release
has: every public class member and ``self`` attribute must exist in at least one release, and
every keyword-capable parameter must be a keyword argument some release documents ("at least one
release": the double imitates the API the code targets across 10.3 .. 11.x). Names only some
releases have are reported as a warning naming the releases. The build double inside
tests/test_build_engine.py is checked by the same rule against a list of its known findings.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Dict

import pytest

import trt_conformance as tc

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("oscar_edge", "export", "benchmarks", "tests")

# Names the code deliberately reads behind hasattr / getattr(..., default) because a TensorRT
# release the project supports lacks them, or is expected to drop them. One line of reason each.
VERSION_DEPENDENT: Dict[str, str] = {
    # NetworkDefinitionCreationFlag.STRONGLY_TYPED: required for typed graphs on 10.x, deprecated
    # and ignored on 11.x (deploy-notes.md, "Precision in TensorRT 11"); trt_build.build_engine
    # falls back to flags 0 and tests/test_tensorrt_plugins.py checks hasattr first.
    "STRONGLY_TYPED": "deprecated in TensorRT 11 (every network is strongly typed)",
}

# tests/test_build_engine.py's build double: its known findings ((name, kind) pairs); a new one
# fails the test. Empty: that double offers no name a real release lacks.
BUILD_DOUBLE_KNOWN: set = set()


@pytest.fixture(scope="module")
def releases() -> Dict[str, tc.ReleaseNames]:
    try:
        wheels = {v: tc.fetch_wheel(v) for v in tc.RELEASES}
    except tc.RegistryUnreachable as exc:
        pytest.skip(f"the TensorRT bindings wheels cannot be downloaded here ({exc})")
    return {v: tc.names_from_wheel(w, v) for v, w in wheels.items()}


@pytest.fixture(scope="module")
def project_uses():
    return tc.collect_uses(tc.project_sources(REPO, SCANNED))


def _fail(title: str, problems) -> None:
    if problems:
        pytest.fail(f"{title} ({len(problems)}):\n  " + "\n  ".join(problems), pytrace=False)


# ------------------------------------------------------------------ the real releases
def test_conformance_release_names_tell_releases_apart(releases):
    """The extraction sees names, keyword arguments and the 11.x removals (deploy-notes.md:
    BuilderFlag.FP16, calibrators and platform_has_fast_fp16 are gone in TensorRT 11)."""
    for v, r in releases.items():
        for name in ("Builder", "build_serialized_network", "execute_async_v3", "OnnxParser",
                     "set_memory_pool_limit", "nptype", "__version__", "Severity"):
            assert r.has(name), f"{v}: {name}"
        assert {"stream_handle", "ignore_mismatch"} <= r.args, v
        assert not r.has("no_such_method_anywhere") and "no_such_kwarg" not in r.args, v
    removed_in_11 = ("FP16", "platform_has_fast_fp16", "IInt8EntropyCalibrator2",
                     "int8_calibrator")
    for name in removed_in_11:
        assert releases["10.3.0"].has(name) and releases["10.13.3.9"].has(name), name
        assert not releases["11.4.0.106"].has(name), name


# ------------------------------------------------------------------ the project's code
def test_conformance_project_code_uses_only_real_names(releases, project_uses):
    modules = {u.path for u in project_uses}
    for core in ("oscar_edge/export/trt_build.py", "oscar_edge/backends/trt_backend.py"):
        assert core in modules, f"the collector found no TensorRT use in {core}"
    names = {u.name for u in project_uses}
    assert {"build_serialized_network", "execute_async_v3", "stream_handle", "ignore_mismatch",
            "deserialize_cuda_engine", "parse_from_file"} <= names
    _fail("TensorRT names used by the project that a real release lacks",
          tc.check_uses(project_uses, releases, VERSION_DEPENDENT))


def test_conformance_collector_reports_bogus_names(releases):
    """The check that runs on the project catches a misspelt method, a bogus keyword, a name
    11.x dropped, a guard that hides a misspelling and an unlisted version-dependent guard."""
    source = '''
import tensorrt as trt

def build(logger, path):
    builder = trt.Builder(logger)
    network = builder.create_network(0).no_such_method()
    trt.OnnxParser(network, logger).parse_from_file(path, bogus_kwarg=1)
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    flag = getattr(trt.BuilderFlag, "no_such_flag", None)
    if hasattr(builder, "platform_has_fast_fp16"):
        print(builder.platform_has_fast_fp16)
'''
    uses = tc.collect_uses({"synthetic.py": source})
    problems = tc.check_uses(uses, releases, {})
    text = "\n".join(problems)
    assert "TensorRT 10.3.0, 10.13.3.9, 11.4.0.106 has no 'no_such_method'" in text
    assert "no method documents a keyword argument 'bogus_kwarg'" in text
    assert "TensorRT 11.4.0.106 has no 'FP16'" in text
    assert "no TensorRT release has 'no_such_flag'" in text
    assert "TensorRT 11.4.0.106 has no 'platform_has_fast_fp16', used behind a guard: add it " \
        "to VERSION_DEPENDENT with a reason: synthetic.py:11 (hasattr, guarded)" in text
    assert "synthetic.py:12 (attribute, guarded)" in text  # the use inside the hasattr block
    assert len(problems) == 6, text
    # listed, it is accepted behind the guard; listed but unused, the entry is stale
    listed = tc.check_uses(uses, releases, {"platform_has_fast_fp16": "gone in 11",
                                            "never_used": "stale"})
    assert not any("platform_has_fast_fp16" in p for p in listed)
    assert any("lists 'never_used', which no TensorRT-using code uses" in p for p in listed)


def test_conformance_version_dependent_names_are_used_only_guarded(project_uses):
    """No download needed: every VERSION_DEPENDENT name is used, and only behind a guard."""
    for name in VERSION_DEPENDENT:
        uses = [u for u in project_uses if u.name == name]
        assert uses, f"VERSION_DEPENDENT lists {name!r}, which the code no longer uses"
        assert all(u.guarded for u in uses), [u.where() for u in uses if not u.guarded]


def test_conformance_collector_data_flow():
    """No download needed: the taint rule on a small two-module program."""
    helper = '''
def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise RuntimeError("no TensorRT")
    return trt
'''
    user = '''
from helper import import_tensorrt

class Engine:
    def __init__(self, trt=None):
        self.trt = trt if trt is not None else import_tensorrt()
        self.runtime = self.trt.Runtime(self.trt.Logger(self.trt.Logger.WARNING))

    def load(self, data):
        engine = self.runtime.deserialize_cuda_engine(data)
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        return [name.upper() for name in names]

def configure(builder, flags):
    config = builder.create_builder_config()
    if hasattr(flags, "STRONGLY_TYPED"):
        return config, flags.STRONGLY_TYPED
    return config, getattr(flags, "NEW_FLAG", None)

def build():
    trt = import_tensorrt()
    builder, logger = trt.Builder(trt.Logger()), "not TensorRT"
    logger.strip()
    config, flag = configure(builder, trt.NetworkDefinitionCreationFlag)
    config.set_timing_cache(None, ignore_mismatch=True)
    for c in trt.get_plugin_registry().all_creators:
        print(c.plugin_version)
    listed = ["a", "b"]
    return [c.startswith("a") for c in listed]
'''
    uses = tc.collect_uses({"helper.py": helper, "user.py": user})
    got = {(u.name, u.kind, u.guarded) for u in uses}
    a = "attribute"
    assert got == {
        ("Runtime", a, False), ("Logger", a, False), ("WARNING", a, False),
        ("deserialize_cuda_engine", a, False), ("get_tensor_name", a, False),
        ("num_io_tensors", a, False), ("create_builder_config", a, False),
        ("STRONGLY_TYPED", "hasattr", True), ("STRONGLY_TYPED", a, True),
        ("NEW_FLAG", "getattr", True), ("Builder", a, False),
        ("NetworkDefinitionCreationFlag", a, False), ("set_timing_cache", a, False),
        ("ignore_mismatch", "keyword", False), ("get_plugin_registry", a, False),
        ("all_creators", a, False), ("plugin_version", a, False),
    }, sorted(got)


def test_conformance_allow_list_logic_offline():
    """No download needed: check_uses on hand-made releases."""
    old = tc.ReleaseNames("10.0", ["build", "OLD_FLAG"], args=frozenset({"stream"}))
    new = tc.ReleaseNames("11.0", ["build", "NEW_FLAG"], args=frozenset({"stream"}))
    rel = {"10.0": old, "11.0": new}
    U = tc.Use
    uses = [U("build", "attribute", False, "m.py", 1), U("OLD_FLAG", "getattr", True, "m.py", 2),
            U("NEW_FLAG", "attribute", False, "m.py", 3), U("stream", "keyword", False, "m.py", 4),
            U("strem", "keyword", False, "m.py", 5)]
    problems = tc.check_uses(uses, rel, {})
    assert problems == [
        "TensorRT 11.0 has no 'OLD_FLAG', used behind a guard: add it to VERSION_DEPENDENT "
        "with a reason: m.py:2 (getattr, guarded)",
        "TensorRT 10.0 has no 'NEW_FLAG': m.py:3 (attribute)",
        "TensorRT 10.0, 11.0: no method documents a keyword argument 'strem': m.py:5 (keyword)",
    ]
    assert tc.check_uses(uses[:1] + uses[3:4], rel, {"OLD_FLAG": "x"}) == [
        "VERSION_DEPENDENT lists 'OLD_FLAG', which no TensorRT-using code uses any more: "
        "remove it"]


# ------------------------------------------------------------------ the test doubles
def _double(path: str, skip=()):
    return tc.double_offers((REPO / path).read_text(encoding="utf-8"), roots=["FakeTensorRT"],
                            skip=skip, setup_constructors=["FakeTensorRT.__init__"])


def test_conformance_test_double_offers_only_real_names(releases):
    offers = _double("tests/trt_test_double.py", skip=["FakeCudart"])
    names = {o.name for o in offers}
    assert {"deserialize_cuda_engine", "execute_async_v3", "get_creator", "Logger",
            "stream_handle"} <= names, sorted(names)
    problems, notes = tc.check_offers(offers, releases)
    for note in notes:
        warnings.warn(f"tests/trt_test_double.py: {note}")
    _fail("tests/trt_test_double.py offers names no real TensorRT release has", problems)


def test_conformance_double_check_catches_made_up_names(releases):
    source = '''
class FakeTensorRT:
    class Logger:
        WARNING = 2
        MADE_UP_LEVEL = 9

    def __init__(self, calls):
        self._calls = calls

    def Runtime(self, logger, /):
        return _Runtime()

class _Runtime:
    def deserialize_cuda_engine(self, blob):
        self.deserialized = True
        return None

    def made_up_method(self):
        pass
'''
    offers = tc.double_offers(source, ["FakeTensorRT"],
                              setup_constructors=["FakeTensorRT.__init__"])
    problems, _ = tc.check_offers(offers, releases)
    text = "\n".join(problems)
    for bad in ("'MADE_UP_LEVEL'", "'blob'", "'deserialized'", "'made_up_method'"):
        assert f"{bad}:" in text, text
    assert "'calls'" not in text  # the double's own constructor is test set-up, not API
    assert len(problems) == 4, text


def test_conformance_build_double_offers_only_real_names(releases):
    """tests/test_build_engine.py's FakeTensorRT offers no name a real release lacks (its
    test-control state is underscore-prefixed, its parameters positional like TensorRT's)."""
    offers = _double("tests/test_build_engine.py", skip=["RealTensorRT"])
    problems, _ = tc.check_offers(offers, releases)
    found = set()
    for o in offers:
        if any(p.endswith(o.where()) and f"{o.name!r}" in p for p in problems):
            found.add((o.name, o.kind))
    assert found == BUILD_DOUBLE_KNOWN, "\n".join(problems)
