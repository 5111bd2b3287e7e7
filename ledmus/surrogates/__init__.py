"""Learned surrogates (LED: Vlachas, Arampatzis, Uhler & Koumoutsakos, "Learning the
effective dynamics of complex multiscale systems", §6): autoencoders, mixture-density
decoder, latent RNN propagators, two-stage training and checkpoints.

Depends on torch, :mod:`ledmus.solvers`, :mod:`ledmus.systems` and the shared utilities
(:mod:`ledmus.trajectory`, ...); never on :mod:`ledmus.coupler`. ::

    from ledmus.surrogates import load_model
    model, payload = load_model("models/led_fhn.pt", system="fhn")
    z = model.forecast_latent(warmup_states, horizon=8000)   # (B, 8000, d_z)
    states = model.decode_sequence(z)                       # (B, 8000, 2, 101)
"""

from .checkpoint import load_model, read_checkpoint, save_checkpoint
from .closure.macro import ClosureMacro
from .led import LED
from .led_macro import LEDMacro
from .macro import MACRO_MODELS, MacroModel, load_macro_model, register_macro_model
from .networks import (
    ConvAutoencoder,
    MixtureDensityDecoder,
    MLPAutoencoder,
    ParticleAutoencoder,
    PermutationInvariantEncoder,
)
from .pca import PCA, PCAMacro
from .propagators import LatentRNN
from .scalers import Scaler
from .training import train_from_config
from .vo import VirtualObservableCG
from .vo_macro import VOMacro

__all__ = [
    "LED",
    "LEDMacro",
    "MACRO_MODELS",
    "MacroModel",
    "load_macro_model",
    "register_macro_model",
    "ConvAutoencoder",
    "LatentRNN",
    "MLPAutoencoder",
    "MixtureDensityDecoder",
    "ParticleAutoencoder",
    "PermutationInvariantEncoder",
    "Scaler",
    "load_model",
    "read_checkpoint",
    "save_checkpoint",
    "train_from_config",
    "PCA",
    "PCAMacro",
    "VirtualObservableCG",
    "VOMacro",
    "ClosureMacro",
]
