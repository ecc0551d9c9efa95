"""alexnet_sweep's Hydra launchers: the joblib and Ray plugins' launchers, made safe for sweeps (see launchers.py)."""
