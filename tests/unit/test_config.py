"""Config: presets, precedence, key and type checking, validation, resolved output."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from models.gpt_config import GPTConfig
from pipeline import config as cfgmod
from pipeline.config import ConfigError
from pipeline.stage_config import (
    FeaturiseConfig,
    ParseConfig,
    PipelineConfig,
    SparkConfig,
    TrainConfig,
    load_config,
)

ROOT = Path(__file__).resolve().parents[2]
PRESETS = sorted((ROOT / "conf").glob("*.yaml"))


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_are_valid() -> None:
    cfg = load_config()
    assert cfg.spark.master == "local[*]"
    assert cfg.spark.bind_address == "127.0.0.1"
    assert cfg.parse.namespaces == [0]
    assert cfg.parse.max_wikitext_bytes == 4 * 2**20
    assert cfg.featurise.val_fraction == 0.05
    assert cfg.featurise.vocab_size == 8192


@pytest.mark.parametrize("preset", PRESETS, ids=[p.name for p in PRESETS])
def test_every_preset_loads_and_says_what_it_is_for(preset: Path) -> None:
    lines = preset.read_text(encoding="utf-8").splitlines()
    header = "\n".join(
        line for line in lines[: next(i for i, t in enumerate(lines) if t[:1] != "#")]
    )
    assert header, f"{preset.name} must start with a comment saying what it is for"
    assert "pipeline " in header or "make " in header, f"{preset.name}: name the command using it"
    load_config(preset)


def test_precedence_cli_over_file_over_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "spark:\n  master: local[1]\ntrain:\n  np: 2\n  micro_batch: 8\n")
    cfg = load_config(path, ["train.np=4"])
    assert cfg.spark.master == "local[1]"  # file beats default
    assert cfg.train.np == 4  # command line beats file
    assert cfg.train.micro_batch == 8
    assert cfg.train.lr == TrainConfig().lr  # untouched default


def test_overrides_convert_by_field_type() -> None:
    cfg = load_config(
        overrides=[
            "spark.master=local[2]",
            "spark.ui_enabled=false",
            "spark.shuffle_partitions=8",
            "train.lr=3e-4",
            "parse.namespaces=[0, 14]",
            "parse.input=../dumps/*.xml.bz2",
            "featurise.tokenizer=null",
            "spark.conf={spark.executor.memory: 4g}",
        ]
    )
    assert cfg.spark.master == "local[2]"
    assert cfg.spark.ui_enabled is False
    assert cfg.spark.shuffle_partitions == 8
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.parse.namespaces == [0, 14]
    assert cfg.parse.input == ["../dumps/*.xml.bz2"]
    assert cfg.featurise.tokenizer is None
    assert cfg.spark.conf == {"spark.executor.memory": "4g"}


def test_later_override_wins() -> None:
    assert load_config(overrides=["train.np=2", "train.np=1"]).train.np == 1


def test_unknown_key_names_key_and_valid_keys() -> None:
    with pytest.raises(ConfigError) as e:
        load_config(overrides=["train.nope=1"])
    msg = str(e.value)
    assert "train.nope" in msg
    assert "max_steps" in msg and "global_batch" in msg


def test_unknown_top_level_key_in_file_names_file(tmp_path: Path) -> None:
    path = write(tmp_path, "trian:\n  np: 2\n")
    with pytest.raises(ConfigError, match=r"c\.yaml.*'trian'.*work_dir, spark, parse"):
        load_config(path)


def test_wrong_type_in_file_names_key_and_type(tmp_path: Path) -> None:
    path = write(tmp_path, "train:\n  max_steps: lots\n")
    with pytest.raises(ConfigError, match=r"train\.max_steps: expected int, got 'lots'"):
        load_config(path)


def test_bool_is_not_an_int(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="train.np: expected int"):
        load_config(write(tmp_path, "train:\n  np: true\n"))


def test_wrong_type_override() -> None:
    with pytest.raises(ConfigError, match=r"train\.np: expected int, got 'two'"):
        load_config(overrides=["train.np=two"])
    with pytest.raises(ConfigError, match="one of 'horovodrun', 'spark', 'local'"):
        load_config(overrides=["train.launcher=mpirun"])


def test_typed_values_are_checked_not_converted() -> None:
    """``(key, value)`` pairs (the CLI's flags) keep their type: no text round trip."""
    cfg = cfgmod.load(
        PipelineConfig,
        overrides=["train.np=2", ("train.np", 4), ("parse.input", ["[x].xml", "a: b", "*.bz2"])],
    )
    assert cfg.train.np == 4
    assert cfg.parse.input == ["[x].xml", "a: b", "*.bz2"]  # not read as YAML
    assert cfgmod.load(PipelineConfig, overrides=[("parse.out", "null")]).parse.out == "null"
    with pytest.raises(ConfigError, match=r"train\.np: expected int, got '4'"):
        cfgmod.load(PipelineConfig, overrides=[("train.np", "4")])
    with pytest.raises(ConfigError, match=r"parse\.input\[1\]: expected str, got 3"):
        cfgmod.load(PipelineConfig, overrides=[("parse.input", ["a", 3])])
    with pytest.raises(ConfigError, match="unknown config key 'train.nope'"):
        cfgmod.load(PipelineConfig, overrides=[("train.nope", 1)])


def test_section_cannot_be_set_as_a_value() -> None:
    with pytest.raises(ConfigError, match="'spark' is a section"):
        load_config(overrides=["spark=local"])


def test_malformed_override() -> None:
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(overrides=["train.np"])


def test_validation_in_post_init_names_section() -> None:
    with pytest.raises(ConfigError, match="spark: master 'local\\[two\\]' is not a Spark master"):
        load_config(overrides=["spark.master=local[two]"])
    with pytest.raises(ConfigError, match="global_batch 30 is not a multiple"):
        load_config(overrides=["train.global_batch=30", "train.micro_batch=16"])
    with pytest.raises(ConfigError, match="not divisible by n_head"):
        load_config(overrides=["model.n_embd=130", "model.n_head=4"])
    with pytest.raises(ConfigError, match="model.block_size 2048 exceeds featurise.block_size"):
        load_config(overrides=["model.block_size=2048"])


@pytest.mark.parametrize(
    "master", ["local", "local[*]", "local[4]", "local[4,2]", "spark://10.0.0.1:7077", "yarn"]
)
def test_spark_master_forms_accepted(master: str) -> None:
    assert load_config(overrides=[f"spark.master={master}"]).spark.master == master


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    path = write(tmp_path, "work_dir: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(
        ConfigError,
        match=r"c\.yaml at line 1, column 11: tag !!python/object/apply:os\.system is not "
        "allowed; only plain YAML is read",
    ):
        load_config(path)


def test_a_tag_deeper_in_the_file_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "train:\n  np: 1\n  name: !!python/name:os.system\n")
    with pytest.raises(ConfigError, match=r"at line 3, column 9: tag !!python/name:os\.system"):
        load_config(path)


@pytest.mark.parametrize(
    "override",
    [
        "spark.conf=!!python/name:os.system",  # a mapping value: parsed as YAML
        "spark.conf={a: !!python/object/apply:os.system [id]}",
        "train.name=!!python/name:os.system",  # a string value: refused too
    ],
)
def test_tags_in_overrides_are_refused(override: str) -> None:
    with pytest.raises(ConfigError, match=r"^override .*tag !!python/.* is not allowed"):
        load_config(overrides=[override])


def test_bad_yaml_in_an_override_names_it() -> None:
    with pytest.raises(ConfigError, match=r"^override spark\.conf=\{a: \[: invalid YAML"):
        load_config(overrides=["spark.conf={a: ["])


def test_a_binary_file_is_not_a_config(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match=r"c\.yaml: not a UTF-8 text file"):
        load_config(path)


def test_yaml_syntax_error_gives_line(tmp_path: Path) -> None:
    path = write(tmp_path, "spark:\n  master: [local\n")
    with pytest.raises(ConfigError, match=r"c\.yaml at line \d+, column \d+: invalid YAML"):
        load_config(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.yaml")


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    cfg = load_config(ROOT / "conf" / "local.yaml", ["train.np=1", "train.global_batch=16"])
    out = cfgmod.save_resolved(cfg, tmp_path / "out" / "config.yaml")
    assert out.read_text(encoding="utf-8").startswith("work_dir:")
    assert load_config(out) == cfg
    assert not [p for p in out.parent.iterdir() if p.name != "config.yaml"]  # no temp left


CLASSES = [PipelineConfig, SparkConfig, ParseConfig, FeaturiseConfig, TrainConfig, GPTConfig]


@pytest.mark.parametrize("cls", CLASSES, ids=[c.__name__ for c in CLASSES])
def test_every_field_has_a_docstring(cls: type) -> None:
    docs = cfgmod.field_docs(cls)
    missing = [f.name for f in dataclasses.fields(cls) if not docs.get(f.name)]
    assert not missing, f"{cls.__name__} fields without a docstring: {missing}"


def test_describe_lists_every_leaf_key() -> None:
    keys = {row[0] for row in cfgmod.describe(PipelineConfig)}
    assert {"spark.master", "parse.namespaces", "train.np", "model.n_layer", "work_dir"} <= keys
    assert "spark" not in keys


def test_resolved_yaml_is_plain(tmp_path: Path) -> None:
    """The saved config must load with safe_load (no Python tags)."""
    out = cfgmod.save_resolved(load_config(), tmp_path / "config.yaml")
    assert yaml.safe_load(out.read_text(encoding="utf-8"))["spark"]["master"] == "local[*]"
