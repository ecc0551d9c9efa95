"""What Hydra must discover of alexnet_sweep: its sweeper, its Ray launcher adapter and its launcher configs.

Hydra instantiates sweepers and launchers only from the `hydra_plugins` namespace. The classes here are thin; the
work is done in `alexnet_sweep.sweep` and `alexnet_sweep.launching`. `alexnet_sweep.plugins.register()` makes
Hydra use them.
"""
