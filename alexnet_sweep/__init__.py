"""Hydra + Keras + MLflow hyperparameter sweeps of AlexNet on CIFAR-10, Imagenette and an offline dataset."""

__version__ = "0.1.0"
