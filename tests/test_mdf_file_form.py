"""The MDF classes' file form is declared once (a codec per field, see
``torchmdf.mdf.model._FileObject``): loading and saving the shared fixtures writes exactly the
bytes the hand-written ``to_dict`` wrote (their sha256 recorded before the change), unknown
keys are still kept and errors still located."""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import fields
from pathlib import Path

import pytest

from torchmdf.errors import UnknownKeyWarning, ValidationError
from torchmdf.mdf import dumps, load, loads
from torchmdf.mdf.model import CLASSES, Condition, InputPort, Model

RECORDED = json.loads((Path(__file__).parent / "fixtures" / "mdf_resave_sha256.json").read_text())


def test_resaving_the_shared_fixtures_writes_the_same_bytes(mdf_examples):
    seen = 0
    for key, digest in RECORDED.items():
        rel, fmt = key.split(" -> ")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = load(mdf_examples / rel)
        got = hashlib.sha256(dumps(m, fmt).encode()).hexdigest()
        assert got == digest, key
        seen += 1
    assert seen == len(RECORDED) > 40


def test_every_file_field_has_a_codec():
    for cls in CLASSES:
        if cls is Condition:  # hand-written: type first, kwargs always, 'args' read as kwargs
            continue
        names = {f.name for f in fields(cls)} - {"id", "extra", "source"}
        assert names == {f.name for f in fields(cls) if "mdf" in f.metadata} - {"id"}, cls.__name__


def test_unknown_keys_kept_written_back_and_refused_when_strict():
    text = '{"m": {"graphs": {"g": {"nodes": {"n": {"input_ports": {"i": {"shape": [1], "colour": "red"}}}}}}}}'
    with pytest.warns(UnknownKeyWarning, match="colour"):
        m = loads(text, "json")
    port = m.graphs[0].nodes[0].input_ports[0]
    assert port.extra == {"colour": "red"}
    assert m.to_dict()["m"]["graphs"]["g"]["nodes"]["n"]["input_ports"]["i"] == {"colour": "red", "shape": [1]}
    with pytest.raises(ValidationError, match=r"input port 'i'.*unknown key 'colour'"):
        Model.from_dict(json.loads(text), strict=True)
    with pytest.raises(ValidationError, match="input port 'p'"):
        InputPort.from_dict({"shape": [1], "bad": 1}, id="p", strict=True)
