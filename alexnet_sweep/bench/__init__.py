"""The benchmarks: `python -m alexnet_sweep.bench` and `python -m alexnet_sweep.bench.launchers`.

`python -m alexnet_sweep.bench` measures our training path against the reference notebook's, in one run. Every
variant trains the same AlexNet on the same data (the offline `shapes` dataset, prepared on the fly) with the same
batch size, learning rate and training budget:

- `reference`: the notebook's recipe, re-implemented on purpose (not from our modules, see `reference`): per-example
  `tf.image.resize(image / 255, ...)` in the tf.data map on the host, one-hot labels, `shuffle(256)`, `batch`,
  a float32 Keras model fed float32 images, Adam, categorical cross-entropy.
- `ours`: `alexnet_sweep.data.load_splits` + `alexnet_sweep.model.compiled_model` exactly as a job uses them (uint8
  images cached in memory; scaling and resizing are the model's first layers), once per precision policy the
  machine can run, the `precision=auto` choice first (see `recipes`).

Each variant trains `--steps` steps at `--input-size` and is evaluated on the test split (so a speedup is never
bought with accuracy), and trains `--size227-steps` steps at 227x227 (the reference size) for throughput only.
Throughput is steady state: the first `--warmup-steps` steps (tracing, compilation, caches) are left out.

Modules: `recipes` and `reference` (what is measured), `measure` (timing), `machine` (what it ran on), `run` (the
whole bench), `markdown` (its table and files), `cli` (the command line), `launchers` (the launcher bench),
`overhead` (each short job's time around its training, with and without model reuse).
This package's `__init__` imports nothing, so the launcher bench starts without TensorFlow.
"""
