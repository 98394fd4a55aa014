"""Where the project finds ``shared/`` (``cpm.base.paths``): beside the repository root, or beside a parent of it."""

from __future__ import annotations

from cpm.base import paths


def test_shared_is_found_beside_the_root_or_a_parent_and_named_when_missing(monkeypatch, tmp_path):
    monkeypatch.delenv("GREENBUTTON_DIR", raising=False)
    monkeypatch.setattr(paths, "REPO", tmp_path / "work" / "newuser" / "cpm")
    # Missing everywhere: the path beside the root, for the caller's message.
    assert paths.shared_path("data", "programs", "real-programs.json") == (
        tmp_path / "work" / "newuser" / "shared" / "data" / "programs" / "real-programs.json")
    # Two levels up (a clone in a folder beside shared/): found there.
    facts = tmp_path / "work" / "shared" / "data" / "programs" / "real-programs.json"
    facts.parent.mkdir(parents=True)
    facts.write_text("{}")
    assert paths.shared_path("data", "programs", "real-programs.json") == facts
    assert paths.green_button_dir() == tmp_path / "work" / "newuser" / "shared" / "data" / "greenbutton"
    (tmp_path / "work" / "shared" / "data" / "greenbutton").mkdir()
    assert paths.green_button_dir() == tmp_path / "work" / "shared" / "data" / "greenbutton"
    # Beside the root wins over a parent; GREENBUTTON_DIR over both.
    (tmp_path / "work" / "newuser" / "shared" / "data" / "greenbutton").mkdir(parents=True)
    assert paths.green_button_dir() == tmp_path / "work" / "newuser" / "shared" / "data" / "greenbutton"
    monkeypatch.setenv("GREENBUTTON_DIR", str(tmp_path / "elsewhere"))
    assert paths.green_button_dir() == tmp_path / "elsewhere"
