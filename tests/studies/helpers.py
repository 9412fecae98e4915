"""The tiny study TOML that the CLI tests share: 8x8 denoising under the phantom-Gaussian prior, exact sampler."""


def tiny_study_toml(num_cases: int, num_samples: int) -> str:
    """A study named ``cli-tiny`` with ``num_cases`` calibration and test cases and ``num_samples`` exact draws."""
    return f"""
name = "cli-tiny"
seed = 2
[problem]
operator = "denoise"
image_size = 8
noise_sigma = 0.1
[prior]
name = "phantom-gaussian"
[data]
family = "prior"
num_calibration = {num_cases}
num_test = {num_cases}
[samplers.exact]
sampler = "exact"
num_samples = {num_samples}
[diagnostics]
audit = false
"""
