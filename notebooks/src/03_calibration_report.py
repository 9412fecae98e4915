# %% [markdown]
# # A calibration study and how to read its report
#
# A sampler's 90% credible intervals should contain the truth 90% of the time. One image cannot tell;
# a **study** can: many held-out phantoms, simulated measurements, posterior samples for each, and the
# diagnostics of `bayesinv.diagnostics` over all of them. A study is a TOML spec; `calibrate` runs it
# (resumably: one result file per case), analyses it and renders a self-contained HTML report.

# %%
import os
import tomllib
from pathlib import Path

from bayesinv.studies import calibrate, parse_study

SMALL = os.environ.get("BAYESINV_NOTEBOOK_SMALL") == "1"
CASES = 4 if SMALL else 8
SAMPLES = 4 if SMALL else 8

spec = parse_study(tomllib.loads(f"""
name = "notebook-deblur"
seed = 0
[problem]
operator = "deblur"
image_size = 32
noise_sigma = 0.05
[problem.operator_options]
std = 1.5
[prior]
name = "phantom32"
[data]
lesion_prob = 0.5
num_calibration = {CASES}
num_test = {CASES}
[samplers.ddrm]
sampler = "ddrm"
num_samples = {SAMPLES}
steps = 20
[samplers.tv]
sampler = "tv"
[diagnostics]
alpha = 0.1
delta = 0.1
audit = true
"""))
out = Path("study-output-small" if SMALL else "study-output")  # git-ignored; rerunning resumes
report = calibrate(spec, out, progress=False)  # results in out/results, report.html + .json in out
print("report:", report)

# %% [markdown]
# ## What the report says, in numbers
# `report.json` (next to the HTML) holds every number the page shows. For each sampler: the coverage of its
# 90% intervals over the test pixels with a Clopper–Pearson interval (over cases), the expected calibration
# error of the coverage curve, SBC and TARP, and the coverage after conformal recalibration on the
# calibration split.

# %%
import json

analysis = json.loads(report.with_name("report.json").read_text())
for label, s in analysis["samplers"].items():
    print(f"{label:5s} PSNR {s['psnr']:.2f} dB | {s['verdict']}")

# %% [markdown]
# ## Reading it
# * **Coverage below nominal** (e.g. 90% intervals covering 70%) means over-confident intervals: the sampler's
#   spread is too small. Above nominal means intervals wider than they need to be.
# * **Stratified coverage** separates lesion pixels from background: a sampler can be calibrated on
#   background and over-confident exactly where it matters.
# * **Recalibration** (RCPS/CRC, Angelopoulos et al. 2022) rescales interval widths on the calibration split
#   so that miscoverage is controlled on new cases; point estimates such as TV get intervals this way too.

# %%
for label, s in analysis["samplers"].items():
    strata = ", ".join(f"{k} {v['coverage']:.1%}" for k, v in s.get("stratified", {}).items())
    print(f"{label:5s} 90% coverage by region: {strata or 'n/a (point estimate)'}")
