"""Fuzzing MDF: random models survive JSON and YAML files and simulate as modeci_mdf steps
them; mutated example files fail only with a located TorchMDFError, touching no file and
importing nothing."""

from __future__ import annotations

import contextlib
import io
import json
import pathlib

import pytest
import yaml
from hypothesis import given

import torchmdf
from torchmdf.mdf import Model
from torchmdf.testing import (
    check_bad_input,
    check_file_roundtrip,
    check_simulation_equivalence,
    document_text,
    mdf_documents,
    mdf_models,
    mutated_documents,
)

EXAMPLES = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "mdf-examples"
#: The shared examples small enough to run many mutations of (the large ones are in
#: test_mdf_corpus / test_hostile_files already).
SMALL_EXAMPLES = sorted(p for p in EXAMPLES.rglob("*") if p.suffix in (".json", ".yaml")
                        and p.name != "expected.json" and p.stat().st_size < 50_000) if EXAMPLES.is_dir() else []


def _document(path: pathlib.Path) -> dict:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


@given(mdf_models())
def test_random_models_survive_json_and_yaml_files(model):
    check_file_roundtrip(model)


@pytest.mark.parametrize("path", SMALL_EXAMPLES, ids=lambda p: p.name)
def test_the_shared_examples_survive_json_and_yaml_files(path):
    check_file_roundtrip(torchmdf.mdf.load(path))


def test_random_models_cover_what_the_issue_asks_for():
    from hypothesis import settings

    seen = set()

    @settings(max_examples=60, database=None)
    @given(mdf_documents())
    def prop(doc):
        g = doc["fuzz"]["graphs"]["g"]
        seen.update(k for n in g["nodes"].values() for p in n.get("parameters", {}).values() for k in p)
        seen.update("weight" for e in g.get("edges", {}).values() if "parameters" in e)
        seen.update(["conditions"] if "conditions" in g else [])

    prop()
    assert {"value", "function", "args", "default_initial_value", "time_derivative", "weight",
            "conditions"} <= seen


@given(mdf_models(vectors=False))
def test_simulate_steps_as_modeci_mdf_does(model):
    pytest.importorskip("modeci_mdf")
    with contextlib.redirect_stdout(io.StringIO()):  # modeci_mdf prints as it evaluates
        check_simulation_equivalence(model, steps=4, dt=0.1)


def test_simulation_check_can_fail():
    """The reference is independent: a model whose simulate result is tampered with differs."""
    pytest.importorskip("modeci_mdf")
    doc = {"m": {"format": "ModECI MDF v0.4", "graphs": {"g": {"nodes": {"A": {
        "parameters": {"x": {"default_initial_value": 1.0, "time_derivative": "-x"}},
        "output_ports": {"o": {"value": "x"}}}}}}}}
    model = Model.from_dict(doc)
    with contextlib.redirect_stdout(io.StringIO()):
        check_simulation_equivalence(model, steps=3, dt=0.1)
    real = torchmdf.simulate

    def tampered(*args, **kwargs):
        out = real(*args, **kwargs)
        return {k: v * 1.01 for k, v in out.items()}

    torchmdf_api = __import__("torchmdf.api", fromlist=["simulate"])
    saved = torchmdf_api.simulate
    torchmdf_api.simulate = tampered
    try:
        with pytest.raises(AssertionError, match="A.o at step"), contextlib.redirect_stdout(io.StringIO()):
            check_simulation_equivalence(model, steps=3, dt=0.1)
    finally:
        torchmdf_api.simulate = saved


def test_a_sender_runs_before_its_receiver_in_the_reference():
    """modeci_mdf runs a consideration set in set order, so a receiver could read its default
    before the sender ran (the fuzzer's first 'failure', a flaky one): the reference orders it."""
    pytest.importorskip("modeci_mdf")
    from torchmdf.testing import reference_trajectories

    doc = {"m": {"format": "ModECI MDF v0.4", "graphs": {"g": {
        "nodes": {"N0": {"output_ports": {"out0": {"value": "0.0"}}},
                  "N1": {"input_ports": {"in0": {"shape": [], "default_value": 1.0}},
                         "output_ports": {"out0": {"value": "in0"}}}},
        "edges": {"e0": {"sender": "N0", "receiver": "N1", "sender_port": "out0", "receiver_port": "in0"}}}}}}
    with contextlib.redirect_stdout(io.StringIO()):
        for _ in range(5):
            assert float(reference_trajectories(Model.from_dict(doc), 1, 0.1)["N1.out0"][0]) == 0.0


# -- bad input -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def warmed_up():
    """Each example processed once, so that what torch and torchmdf import lazily on first use
    is imported before the mutations are checked for imports."""
    if not SMALL_EXAMPLES:
        pytest.skip("../shared/mdf-examples is not present")
    docs = [_document(p) for p in SMALL_EXAMPLES]
    with contextlib.redirect_stdout(io.StringIO()):
        for _ in range(2):
            for d in docs:
                with contextlib.suppress(AssertionError):
                    check_bad_input(document_text(d))
    return docs


@pytest.mark.property
def test_mutated_example_files_fail_only_with_located_errors(warmed_up):
    from hypothesis import strategies as st

    @given(st.sampled_from(warmed_up).flatmap(mutated_documents))
    def prop(doc):
        with contextlib.redirect_stdout(io.StringIO()):
            check_bad_input(document_text(doc))

    prop()


@pytest.mark.property
def test_mutated_actr_files_fail_only_with_located_errors(warmed_up):
    """Mutations of the ACT-R files (evaluated on Python values, not tensors: values, types,
    keys, hostile text) evaluate or fail with a located TorchMDFError; nothing else escapes.
    ``warmed_up``: what torchmdf imports lazily (onnx, for an ``onnx::`` name a mutation writes)
    is imported before the import check."""
    from fuzz_profiles import examples
    from hypothesis import settings
    from hypothesis import strategies as st

    actr_dir = pathlib.Path(__file__).resolve().parent / "fixtures" / "mdf_corpus" / "ACT-R"
    docs = [json.loads((actr_dir / n).read_text()) for n in ("count.json", "addition.json")]
    for d in docs:  # unmutated, they evaluate
        assert check_bad_input(document_text(d)) is None

    @settings(max_examples=examples(40))
    @given(st.sampled_from(docs).flatmap(mutated_documents))
    def prop(doc):
        with contextlib.redirect_stdout(io.StringIO()):
            check_bad_input(document_text(doc))

    prop()


def test_bad_input_check_can_fail(warmed_up):
    """A raw exception escaping, or a package imported, is reported."""
    with pytest.raises(AssertionError, match="not a TorchMDFError"):
        from unittest import mock

        with mock.patch("torchmdf.mdf.load", side_effect=KeyError("boom")):
            check_bad_input(document_text(warmed_up[0]))
    err = check_bad_input('{"m": {"graphs": 3}}')
    assert isinstance(err, torchmdf.TorchMDFError) and err.location


@pytest.mark.parametrize("n", [float("inf"), float("-inf"), float("nan")])
def test_regression_an_infinite_condition_count_is_a_located_error(mdf_examples, n):
    """EveryNCalls with n = inf raised a raw OverflowError (int(inf)) while the scheduler was
    built (found by the long profile's file mutations)."""
    import json

    doc = json.loads((mdf_examples / "MDF" / "conditions" / "everyncalls_condition.json").read_text())
    graph = next(iter(doc.values()))["graphs"]["everyncalls_example"]
    spec = next(c for c in graph["conditions"]["node_specific"].values() if c["type"] == "EveryNCalls")
    spec["kwargs"]["n"] = n
    with pytest.raises(torchmdf.TorchMDFError, match="integer 'n'"):
        torchmdf.simulate(torchmdf.mdf.Model.from_dict(doc), 3)
