"""What every kernel op shares: backend choice, input checks and FFT sizes (`dispatch`), and
polynomial products and series inverses over FFTs (`polynomial`)."""

from tsk.kernels.common.dispatch import BACKENDS, fft_size, resolve_backend
from tsk.kernels.common.polynomial import correlate, fit_length, poly_mul, series_inverse

__all__ = ["BACKENDS", "correlate", "fft_size", "fit_length", "poly_mul", "resolve_backend",
           "series_inverse"]
