"""Study specs: the committed TOML files parse, and every malformed entry names its key."""

import re
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


NAN = float("nan")


@pytest.mark.parametrize("doc,match", [
    # misspelled keys: an error with a "did you mean", never silently ignored
    (_doc(samplers={"x": {"sampler": "dps", "num_sample": 4}}),
     "unknown key 'samplers.x.num_sample'; did you mean 'samplers.x.num_samples'?"),
    (_doc(samplers={"x": {"sampler": "dps", "step": 4}}), "unknown key 'samplers.x.step'; did you mean 'samplers.x.steps'?"),
    (_doc(samplers={"x": {"sampler": "dps", "option": {"guidance_scale": 1.0}}}),
     "unknown key 'samplers.x.option'; did you mean 'samplers.x.options'?"),
    (_doc(diagnostic={"alpha": 0.1}), "unknown key 'diagnostic'; did you mean 'diagnostics'?"),
    (_doc(diagnostics={"aplha": 0.1}), "unknown key 'diagnostics.aplha'; did you mean 'diagnostics.alpha'?"),
    (_doc(sed=3), "unknown key 'sed'; did you mean 'seed'?"),
    (_doc(data__num_tests=4), "unknown key 'data.num_tests'; did you mean 'data.num_test'?"),
    (_doc(problem__zzz=1), "unknown key 'problem.zzz'; allowed keys: operator, image_size"),
    # ranges and finite values
    (_doc(diagnostics={"lesion_threshold": -1}), "'diagnostics.lesion_threshold' must be in (0.0, 1.0), got -1.0"),
    (_doc(diagnostics={"lesion_threshold": NAN}), "'diagnostics.lesion_threshold' must be a finite number, got nan"),
    (_doc(diagnostics={"lesion_threshold": 3.0}), "'diagnostics.lesion_threshold' must be in (0.0, 1.0), got 3.0"),
    (_doc(problem__noise_sigma=NAN), "'problem.noise_sigma' must be a finite number, got nan"),
    (_doc(data__lesion_prob=1.5), "'data.lesion_prob' must be in [0.0, 1.0], got 1.5"),
    (_doc(diagnostics={"audit": 1}), "'diagnostics.audit' must be bool, got int 1"),
    (_doc(diagnostics={"levels": [0.5, True]}), "'diagnostics.levels' must be numbers in (0, 1)"),
    (_doc(seed=-1), "'seed' must be >= 0, got -1"),
    (_doc(problem__image_size=0), "'problem.image_size' must be >= 2, got 0"),
    (_doc(samplers={"x": {"sampler": "dps", "steps": 0}}), "'samplers.x.steps' must be >= 1, got 0"),
    (_doc(samplers={"x": {"sampler": "dps", "num_samples": True}}), "'samplers.x.num_samples' must be int, got bool"),
    # case batching: a positive int, and only for samplers that run several cases per call
    (_doc(samplers={"x": {"sampler": "ddrm", "batch_cases": 0}}), "'samplers.x.batch_cases' must be >= 1, got 0"),
    (_doc(samplers={"x": {"sampler": "ddrm", "batch_cases": "8"}}),
     "'samplers.x.batch_cases' must be int, got str '8'"),
    (_doc(samplers={"x": {"sampler": "smc", "batch_cases": 4}}),
     "'samplers.x.batch_cases' = 4: sampler 'smc' runs one case per call"),
    (_doc(samplers={"x": {"sampler": "ddrm", "batch_case": 4}}),
     "unknown key 'samplers.x.batch_case'; did you mean 'samplers.x.batch_cases'?"),
    # reserved labels: results/cases/ holds the ground truth
    (_doc(samplers={"cases": {"sampler": "dps"}}), "sampler label 'samplers.cases' is reserved"),
    # option names and types, checked against the sampler's signature before any work
    (_doc(samplers={"x": {"sampler": "ddrm", "options": {"eta": True}}}),
     "'samplers.x.options': ddrm: option 'eta' must be float, got bool True"),
    (_doc(samplers={"x": {"sampler": "ddrm", "options": {"eta": "0.5"}}}),
     "'samplers.x.options': ddrm: option 'eta' must be float, got str '0.5'"),
    (_doc(samplers={"x": {"sampler": "tv", "options": {"max_iter": "10"}}}),
     "'samplers.x.options': tv: option 'max_iter' must be int or None, got str '10'"),
    (_doc(samplers={"x": {"sampler": "tikhonov", "options": {"max_iter": 10.5}}}),
     "tikhonov: option 'max_iter' must be int, got float 10.5"),
    (_doc(samplers={"x": {"sampler": "dps", "options": {"guidance_scal": 1.0}}}),
     "'samplers.x.options': dps has no option 'guidance_scal'"),
    (_doc(samplers={"x": {"sampler": "dps", "options": {"steps": 3}}}), "option 'steps' is set by the study itself"),
    (_doc(samplers={"x": {"sampler": "dpss"}}), "'samplers.x.options': unknown sampler 'dpss'; choose one of"),
])
def test_strict_schema_names_the_key(doc, match):
    with pytest.raises(StudySpecError, match=re.escape(match)):
        parse_study(doc)


def test_numbers_of_the_right_kind_pass():
    spec = parse_study(_doc(samplers={"x": {"sampler": "ddrm", "options": {"eta": 1, "eta_b": 0.5}},
                                      "y": {"sampler": "tv", "options": {"max_iter": 10}}},
                            diagnostics={"lesion_threshold": 0.2}))
    assert spec.samplers[0].options == {"eta": 1, "eta_b": 0.5} and spec.lesion_threshold == 0.2


def test_errors_name_the_file(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text('name = "t"\nsed = 3\n[problem]\noperator = "denoise"\nnoise_sigma = 0.1\n'
                    '[prior]\nname = "phantom-gaussian"\n[data]\nnum_calibration = 4\nnum_test = 4\n'
                    '[samplers.exact]\nsampler = "exact"\n')
    with pytest.raises(StudySpecError, match=re.escape(f"study spec {path.resolve()}: unknown key 'sed'; did you mean 'seed'?")):
        load_study(path)


def test_load_study_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="study spec not found"):
        load_study(tmp_path)
    (tmp_path / "study.toml").write_text("name = [")
    with pytest.raises(StudySpecError, match="not valid TOML"):
        load_study(tmp_path / "study.toml")
