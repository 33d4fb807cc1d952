"""fedjourney: a containerised federated-learning simulation stack for healthcare."""

__version__ = "0.1.0"
