"""Python client for Lever: ``from lever_client import Lever``."""
from .client import Lever
from .models import (CIRCUIT_OPEN, CONNECTION_ERROR, INVALID_INPUT, REJECTED, SERVER_ERROR, TIMEOUT,
                     Assignment, DeliveryStats, LeverError)

__all__ = ["Lever", "Assignment", "DeliveryStats", "LeverError", "TIMEOUT", "CONNECTION_ERROR", "SERVER_ERROR",
           "REJECTED", "CIRCUIT_OPEN", "INVALID_INPUT"]
__version__ = "0.1.0"
