"""Networks and their files: a compact U-Net, the eps/x0/v denoiser contract, safetensors weights and checksums.

Reused by every trained model in bayesinv (diffusion priors, Dirac and unrolled reconstruction networks);
training them is :mod:`bayesinv.training`.
"""

from bayesinv.priors.networks.denoiser import (PARAMETRISATIONS, Denoiser, check_parametrisation, output_to_x0,
                                               training_target, x0_to_output)
from bayesinv.priors.networks.unet import UNet, UNetConfig, count_parameters, inference_layout, timestep_embedding
from bayesinv.priors.networks.weights import load_weights, save_weights, sha256_file, write_checksums

__all__ = ["UNet", "UNetConfig", "count_parameters", "timestep_embedding", "PARAMETRISATIONS", "Denoiser",
           "check_parametrisation", "output_to_x0", "training_target", "x0_to_output", "save_weights", "load_weights",
           "sha256_file", "write_checksums", "inference_layout"]
