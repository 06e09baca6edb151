"""The file MLflow runs to build a run's model at load time (MLflow's models-from-code: nothing is
pickled); the model's code travels with it, so this import resolves to the run's own copy."""

from mlflow.models import set_model

from speechcompress.tracking.model import SpeechModel

set_model(SpeechModel())
