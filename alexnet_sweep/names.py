"""Every name the project writes into MLflow (tags, metrics, param prefixes), defined once.

Metrics follow Keras' history keys, so configs, MLflow, figures, the report and the tests all say the same thing.
"""

from __future__ import annotations

# Per-epoch metrics (step = epoch, from 1), as Keras' history names them.
LOSS, ACCURACY, VAL_LOSS, VAL_ACCURACY = "loss", "accuracy", "val_loss", "val_accuracy"
EPOCH_METRICS = (LOSS, ACCURACY, VAL_LOSS, VAL_ACCURACY)
# After training: the test split (reported, never used to choose) and the epochs this run computed itself.
TEST_LOSS, TEST_ACCURACY = "test_loss", "test_accuracy"
EPOCHS_TRAINED = "epochs_trained"
SELECTION_METRIC = VAL_ACCURACY  # "best" always means best on validation

# Params: the flattened resolved config with dotted keys, plus what `precision=auto` resolved to.
PARAM_PRECISION_POLICY = "precision.policy"

# Tags of every job run.
TAG_MODEL = "model"
TAG_DATASET = "dataset"
TAG_OVERRIDES = "overrides"  # the job's Hydra overrides, credentials masked
TAG_ERROR = "error"  # the one-line cause of a FAILED run (its traceback is the artifact error.txt)
DIVERGED = "diverged at epoch"  # the error of a run whose loss or metrics became NaN or infinite: `... at epoch 3`
TAG_GPUS = "gpus"  # the GPUs the job's TensorFlow saw, e.g. `1 (CUDA_VISIBLE_DEVICES=3)`

# Tags of a sweep's job runs: what identifies a job for resuming and epoch sharing.
TAG_JOB_NUM = "sweep.job_num"
TAG_PROCESS = "sweep.process"  # host:pid of the process that ran the job (a launcher's worker)
TAG_CONFIG = "sweep.config_hash"  # the resolved config, without the keys that only steer resuming
TAG_PREFIX = "sweep.prefix_hash"  # the same without `epochs`: finds the siblings a longer job starts from
TAG_CHECKPOINT = "checkpoint.dir"  # where the run's training state is saved after every epoch
TAG_CONTINUED_FROM = "continued_from"  # the finished sibling whose epochs a run starts from
TAG_SHARED_EPOCHS = "continued_from.epochs"  # how many epochs it copied from that sibling
TAG_SUPERSEDED_BY = "sweep.superseded_by"  # an unfinished run that a rerun of its job replaced
TAG_CONFIGURATION = "configuration"  # swept values but the seed + config hash: "Group by" it shows replicates

# Experiment tags: a running sweep's claim on its grid (`sweep/ownership.py`), `sweep.claim.<grid>.<id>`.
CLAIM_PREFIX = "sweep.claim."

# Tags of a sweep's parent run.
TAG_SWEEP_DIR = "sweep.dir"
TAG_GRID = "sweep.grid_hash"  # the set of the sweep's job configs: a rerun of the same grid resumes this parent
TAG_REUSED_RUNS = "sweep.reused_runs"  # FINISHED runs of other sweeps that its skipped jobs stand for
BEST_PREFIX = "best."  # best.run_id, best.<swept key> (tags) and best.val_accuracy, best.test_accuracy (metrics)
TAG_BEST_RUN = BEST_PREFIX + "run_id"

# Experiment tag that makes the MLflow UI open an experiment as model training (runs table), not a GenAI app.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}

# Tags of a study (`hydra/sweeper=optuna`): on its parent run, and on each trial's run.
TAG_STUDY = "study.name"  # the Optuna study, in the storage named by `study.storage`
TAG_STUDY_STORAGE = "study.storage"  # where the study lives (credentials masked)
TAG_STUDY_SAMPLER = "study.sampler"  # e.g. `tpe (seed 0)`
TAG_STUDY_PRUNER = "study.pruner"  # e.g. `successive_halving` or `none`
TAG_STUDY_SPACE = "study.space"  # JSON: each searched key's Optuna distribution (`distribution_to_json`)
TAG_STUDY_OBJECTIVE = "study.objective"  # `maximize val_accuracy`
TAG_TRIAL = "trial.number"  # a trial's run: its number in the study (also its Hydra job number)
TAG_TRIAL_STATE = "trial.state"  # COMPLETE, PRUNED or FAIL, as Optuna recorded it
TAG_PRUNED = "pruned"  # a pruned trial's run: at which epoch and against what threshold
TAG_BEST_TRIAL = BEST_PREFIX + "trial"  # the parent: the study's best trial number (and best.value its value)
