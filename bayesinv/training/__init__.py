"""The training room: every network bayesinv trains (diffusion priors, Dirac networks, learned baselines).

* :mod:`bayesinv.training.loop`: the generic, deterministic, resumable loop (AdamW, EMA, safetensors
  checkpoints, loss log);
* :mod:`bayesinv.training.run`: what every target shares (train-split phantom batches, the run folder, the
  ``[training]`` table's options, the outputs ``weights.safetensors``, ``loss.csv``, ``train_info.json``,
  ``SHA256SUMS``);
* :mod:`bayesinv.training.prior`, :mod:`bayesinv.training.dirac`, :mod:`bayesinv.training.baselines`: the
  losses and ``train_from_config`` of each target (what ``bayesinv train <target>`` runs).

Nothing outside this package imports it: loading a trained network for inference reads only its model
folder (:mod:`bayesinv.priors.networks.weights`, :mod:`bayesinv.priors.hub`).

The command line names each target's module in :data:`bayesinv.cli.TRAIN_TARGETS`.
"""

from bayesinv.training.loop import TrainResult, ema_update, load_checkpoint, save_checkpoint, step_generator, train_loop
from bayesinv.training.run import phantom_batches

__all__ = ["TrainResult", "train_loop", "ema_update", "save_checkpoint", "load_checkpoint",
           "step_generator", "phantom_batches"]
