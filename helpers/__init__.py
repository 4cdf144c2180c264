"""Funciones de apoyo del curso PEFT: modelo, datos, medidas, gráficas y comprobaciones.

Cada cuaderno las importa en vez de repetir código::

    import helpers
    model, tokenizer = helpers.load_model_and_tokenizer()
"""
from .datasets import load_instructions, load_reviews, to_messages, to_prompt_completion
from .environment import in_autograder, in_colab, show_environment, training_precision, where
from .grading import check_close, check_equal, check_loss_decreases, check_type
from .measure import PeakMemory, Timer, count_parameters, footprint_bytes, format_bytes, format_count, free_memory
from .metrics import load_accuracy
from .models import load_model, load_model_and_tokenizer, load_tokenizer, resolve_profile, steps_for
from .plots import plot_bars, plot_losses, plot_xy
from .training import generate, loss_history, run_sft, sft_config

__version__ = "0.1.0"
