"""Learned surrogates (LED: Vlachas, Arampatzis, Uhler & Koumoutsakos, "Learning the
effective dynamics of complex multiscale systems", §6): autoencoders, mixture-density
decoder, latent RNN propagators, two-stage training and checkpoints.

Depends on torch, :mod:`ledmus.solvers`, :mod:`ledmus.systems` and the shared utilities
(:mod:`ledmus.trajectory`, ...); never on :mod:`ledmus.coupler`.  Each model family is one
registration record (:class:`Family`, :func:`register_family`; the built-in ones in
:mod:`.families` and :mod:`.closure.family`). ::

    from ledmus.surrogates import load_model
    model, payload = load_model("models/led_fhn.pt", system="fhn")
    z = model.forecast_latent(warmup_states, horizon=8000)   # (B, 8000, d_z)
    states = model.decode_sequence(z)                       # (B, 8000, 2, 101)
"""

from . import families  # noqa: F401 - registers the LED, PCA and VO families
from .checkpoint import load_model, read_checkpoint, save_checkpoint
from .closure import family as closure_family  # noqa: F401 - registers the closure families
from .closure.macro import ClosureMacro
from .family import (
    FAMILIES,
    EvaluateOptions,
    Family,
    TrainOptions,
    Verb,
    get_family,
    register_family,
    unregister_family,
)
from .led import LED
from .led_macro import LEDMacro
from .macro import MacroModel, load_macro_model
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
    "FAMILIES",
    "EvaluateOptions",
    "Family",
    "TrainOptions",
    "MacroModel",
    "Verb",
    "get_family",
    "load_macro_model",
    "register_family",
    "unregister_family",
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
