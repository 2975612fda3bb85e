from pathlib import Path

import pytest

from depsim_assets.core.config import ConfigError, load_study
from tests.conftest import REPO

MINIMAL = """
study: s1
sources:
  - {name: t, paths: [t.jsonl]}
"""


def test_shipped_demo_studies_load() -> None:
    hh = load_study(REPO / "depsim.yaml")
    xs = load_study(REPO / "studies" / "xstest.yaml")
    assert [r.name for r in xs.config.releases] == ["llama2orig", "llama2new", "mistralguard", "mistralinstruct", "gpt4"]
    assert xs.config.release("gpt4").incumbent == "mistralinstruct"
    assert hh.config.release("hh-chosen").incumbent == "hh-rejected"
    # Each study has its own warehouse, so they can live side by side.
    assert hh.warehouse_dir != xs.warehouse_dir


def test_env_var_selects_config(write_study, monkeypatch: pytest.MonkeyPatch) -> None:
    p = write_study(MINIMAL, name="other.yaml")
    monkeypatch.setenv("DEPSIM_CONFIG", str(p))
    assert load_study().config.study == "s1"


@pytest.mark.parametrize(
    ("extra", "field", "expected"),
    [
        ("colour: blue\n", "colour", "unknown key"),
        ("ingest: {max_message_chars: lots}\n", "ingest.max_message_chars", "valid integer"),
        ("sources: [{name: t, paths: [a], kind: chat}]\n", "sources.0.kind", "'traffic', 'eval_set' or 'trajectory'"),
        ("privacy: {replacement: surrogate, secret: x}\n", "privacy.secret", "unknown key"),
        ("dispatch: {shards: 0}\n", "dispatch.shards", "greater than or equal to 1"),
        ("sources: [{name: t, paths: [a], kind: trajectory}]\ndispatch: {shards: 4}\n", "dispatch.shards",
         "agentic rollouts are not sharded"),
    ],
)
def test_bad_config_names_file_and_field(write_study, extra: str, field: str, expected: str) -> None:
    text = MINIMAL if not extra.startswith("sources") else "study: s1\n"
    p = write_study(text + extra)
    with pytest.raises(ConfigError) as e:
        load_study(p)
    msg = str(e.value)
    assert str(p) in msg and field in msg and expected in msg, msg


def test_release_with_undeclared_incumbent_is_refused(write_study) -> None:
    p = write_study(
        MINIMAL
        + """
releases:
  - {name: v2, backend: openai, model: m, base_url: "http://127.0.0.1:9/v1", incumbent: v1}
"""
    )
    with pytest.raises(ConfigError, match=r"releases\.v2\.incumbent: 'v1' is not a declared release"):
        load_study(p)


def test_backend_specific_fields_are_required(write_study) -> None:
    p = write_study(MINIMAL + "releases:\n  - {name: v1, backend: recorded, model: m}\n")
    with pytest.raises(ConfigError, match=r"releases\.0.*needs a `recorded:` block"):
        load_study(p)


def test_missing_and_non_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_study(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_study(tmp_path / "list.yaml")
