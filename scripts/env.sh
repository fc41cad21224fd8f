# Source me: the environment every llmship command runs in (Makefile recipes source it too).
# All state stays under LLMSHIP_HOME (default: .llmship/ in the checkout).
_llmship_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
export LLMSHIP_HOME="${LLMSHIP_HOME:-$_llmship_root/.llmship}"
export ZENML_CONFIG_PATH="$LLMSHIP_HOME/zenml"
export ZENML_REPOSITORY_PATH="$_llmship_root"
export ZENML_ANALYTICS_OPT_IN=false
export ZENML_LOGGING_VERBOSITY="${ZENML_LOGGING_VERBOSITY:-WARN}"
export ZENML_ENABLE_RICH_TRACEBACK=false
export ZENML_AUTO_OPEN_DASHBOARD=false
export ZENML_ENABLE_REPO_INIT_WARNINGS=false
export _MLFLOW_SERVER_ARTIFACT_ROOT="$LLMSHIP_HOME/mlflow/artifacts"
export MLFLOW_LOGGING_LEVEL=WARNING
export BENTOML_HOME="${BENTOML_HOME:-$LLMSHIP_HOME/bentoml}"
export BENTOML_DO_NOT_TRACK=true
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-0}"
export TOKENIZERS_PARALLELISM=false
export PATH="$_llmship_root/.venv/bin:$PATH"
unset _llmship_root
