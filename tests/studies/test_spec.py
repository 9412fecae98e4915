"""Study specs: the committed TOML files parse, and every malformed entry names its key."""

from pathlib import Path

import pytest

from bayesinv.studies import StudySpecError, load_study, parse_study

ROOT = Path(__file__).resolve().parents[2]


def _doc(**over):
    doc = {"name": "t", "problem": {"operator": "denoise", "image_size": 8, "noise_sigma": 0.1},
           "prior": {"name": "phantom-gaussian"}, "data": {"num_calibration": 4, "num_test": 4},
           "samplers": {"exact": {"sampler": "exact", "num_samples": 8}}}
    for key, value in over.items():
        section, _, name = key.partition("__")
        if name:
            doc[section] = dict(doc.get(section, {}), **{name: value})
        else:
            doc[section] = value
    return doc


@pytest.mark.parametrize("folder", sorted((ROOT / "calibration").glob("*/study.toml")))
def test_committed_specs_parse(folder):
    spec = load_study(folder)
    assert spec.name == folder.parent.name
    assert 0 < 1 - spec.alpha < 1 and round(1 - spec.alpha, 9) in [round(v, 9) for v in spec.levels]
    assert spec.samplers and spec.path == folder.resolve()


def test_defaults_and_fields():
    spec = parse_study(_doc(samplers={"smc": {"sampler": "smc", "max_cases": 3}}, data__num_ood=2))
    assert spec.seed == 0 and spec.family == "ellipses" and spec.num_ood == 2 and spec.ood_family == "shepp_logan"
    assert spec.levels == tuple(round(0.05 * k, 2) for k in range(1, 20))
    (smc,) = spec.samplers
    assert (smc.label, smc.num_samples, smc.steps, smc.max_cases) == ("smc", 32, None, 3)


@pytest.mark.parametrize("doc,match", [
    (_doc(problem={"image_size": 8, "noise_sigma": 0.1}), "'problem.operator'"),
    (_doc(problem__noise_sigma=-1.0), "'problem.noise_sigma' must be positive, got -1.0"),
    (_doc(problem__image_size="8"), "'problem.image_size' must be int, got str"),
    (_doc(data__num_test=1), "'data.num_calibration' and 'data.num_test' must be >= 2"),
    (_doc(data__family="faces"), "'data.family' must be one of"),
    (_doc(data__ood_family="faces"), "'data.ood_family' must be one of"),
    (_doc(data__num_ood=-1), "'data.num_ood' must be >= 0, got -1"),
    (_doc(samplers={}), "at least one sampler"),
    (_doc(samplers={"a b": {"sampler": "dps"}}), "sampler labels"),
    (_doc(samplers={"x": {"sampler": "dps", "num_samples": 0}}), "'samplers.x.num_samples' must be >= 1, got 0"),
    (_doc(samplers={"x": {"sampler": "dps", "max_cases": 1}}), "'samplers.x.max_cases' must be >= 2"),
    (_doc(samplers={"x": {"num_samples": 2}}), "'samplers.x.sampler'"),
    (_doc(diagnostics={"levels": [0.5, 1.2]}), "'diagnostics.levels' must be numbers in"),
    (_doc(diagnostics={"alpha": 0.0}), "'diagnostics.alpha'"),
])
def test_bad_specs_name_the_key(doc, match):
    with pytest.raises(StudySpecError, match=match.replace("(", r"\(").replace(")", r"\)")):
        parse_study(doc)


def test_load_study_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="study spec not found"):
        load_study(tmp_path)
    (tmp_path / "study.toml").write_text("name = [")
    with pytest.raises(StudySpecError, match="not valid TOML"):
        load_study(tmp_path / "study.toml")
