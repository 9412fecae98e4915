"""Networks and the generic training machinery: a compact U-Net, the eps/x0/v denoiser contract, the loop.

Reused by every trained model in bayesinv (diffusion priors, Dirac and unrolled reconstruction networks).
"""

from bayesinv.priors.networks.denoiser import (PARAMETRISATIONS, Denoiser, check_parametrisation, output_to_x0,
                                               training_target, x0_to_output)
from bayesinv.priors.networks.loop import (TrainResult, ema_update, load_checkpoint, load_weights, save_checkpoint,
                                           save_weights, sha256_file, step_generator, train_loop)
from bayesinv.priors.networks.unet import UNet, UNetConfig, count_parameters, inference_layout, timestep_embedding

__all__ = ["UNet", "UNetConfig", "count_parameters", "timestep_embedding", "PARAMETRISATIONS", "Denoiser",
           "check_parametrisation", "output_to_x0", "training_target", "x0_to_output", "TrainResult", "train_loop",
           "ema_update", "save_checkpoint", "load_checkpoint", "save_weights", "load_weights", "sha256_file",
           "step_generator", "inference_layout"]
