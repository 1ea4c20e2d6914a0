"""benchmarks/fuzz_parser.py keeps working: a two-second run finds nothing, and a planted fault
is caught, saved with its traceback and turned into exit status 1."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from sipfsm import ParseError

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "fuzz_parser.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_parser", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--seconds", "2", "--seed", "1",
         "--findings", str(tmp_path / "findings"), *args],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHONPATH": str(SCRIPT.parent.parent)})


def test_a_short_custom_run_finds_nothing(tmp_path: Path) -> None:
    result = run(tmp_path, "--engine", "custom")
    assert result.returncode == 0, result.stdout + result.stderr
    figures = dict(line.split(": ", 1) for line in result.stdout.splitlines()
                   if ": " in line and not line.startswith(" "))
    assert figures["findings"] == "0"
    assert int(figures["inputs"].replace(",", "")) > 0
    assert float(figures["inputs/s"].replace(",", "")) > 0
    assert int(figures["distinct outcomes"]) > 10
    assert list((tmp_path / "findings").iterdir()) == []


def test_a_short_atheris_run(tmp_path: Path) -> None:
    if importlib.util.find_spec("atheris") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("atheris is missing (scripts/test.sh installs the fuzz extra)")
        pytest.skip("atheris is optional (the fuzz extra)")
    result = run(tmp_path, "--engine", "atheris")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "engine: atheris" in result.stdout and "findings: 0" in result.stdout


def test_a_planted_fault_is_a_finding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fuzz = load()
    real_parse = fuzz.parse

    def faulty(data: bytes | str) -> object:
        if b"BYE" in (data if isinstance(data, bytes) else data.encode()):
            raise KeyError("planted")
        return real_parse(data)

    monkeypatch.setattr(fuzz, "parse", faulty)
    report = fuzz.Report(tmp_path, slow=60.0)
    report.run(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n")
    report.run(b"not SIP")
    assert not report.findings
    report.run(b"BYE sip:a@b SIP/2.0\r\n\r\n" + b"x" * 100)
    report.run(b"BYE sip:a@b SIP/2.0\r\n\r\n")  # smaller: replaces the saved input
    (finding,) = report.findings.values()
    assert finding.signature.startswith("KeyError") and finding.count == 2
    assert finding.path.read_bytes() == b"BYE sip:a@b SIP/2.0\r\n\r\n"
    assert "planted" in finding.path.with_suffix(".txt").read_text()
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".sip", ".txt"]
    assert "findings: 1" in report.summary("custom", 1)


def test_the_round_trip_is_part_of_the_invariant(monkeypatch: pytest.MonkeyPatch) -> None:
    fuzz = load()
    request = (b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/WS h.invalid;branch=z9hG4bK1\r\n"
               b"From: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n"
               b"l: 0\r\n\r\n")
    assert fuzz.examine(request) == "request OPTIONS: passes"
    assert fuzz.examine(b"SIP/2.0 99 Early\r\n\r\n").startswith("ParseError 400")
    real_parse = fuzz.parse
    calls: list[bytes | str] = []

    def second_parse_fails(data: bytes | str) -> object:
        calls.append(data)
        if len(calls) > 1:
            raise ParseError("planted")
        return real_parse(data)

    monkeypatch.setattr(fuzz, "parse", second_parse_fails)
    with pytest.raises(fuzz.Violation, match="does not parse again"):
        fuzz.examine(request)


def test_every_mutation_runs(tmp_path: Path) -> None:
    fuzz = load()
    import random

    rng = random.Random(3)
    seeds = fuzz.builtin_seeds()
    for mutation in fuzz._MUTATIONS:
        for data in [*seeds, b"", b"x", b"\r\n\r\n"]:
            assert isinstance(mutation(rng, data, seeds), bytes)
