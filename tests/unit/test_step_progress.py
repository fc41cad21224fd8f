"""``scripts/step_progress.py``: a pipeline run's output in, one line per step out, all of it in the log.

The input is ZenML's own output as a local run prints it (colours included), captured from a real
``zenml pipeline run`` of a two-step pipeline whose second step raises, with third-party noise between the lines.
"""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

ZENML_RUN = (
    "\x1b[37mInitiating a new run for the pipeline: \x1b[0m\x1b[38;5;105mdeploy_llm\x1b[37m.\x1b[0m\n"
    "\x1b[37mUsing stack: \x1b[0m\x1b[38;5;105mllmship\x1b[37m\x1b[0m\n"
    "\x1b[37mStep \x1b[0m\x1b[38;5;105mbuild_model\x1b[37m has started.\x1b[0m\n"
    "Loading weights: 100%|##########| 236/236 [00:01<00:00, 180.00it/s]\n"
    "result: gguf:gemma -> gemma3_text, 268M parameters, float32\n"
    "\x1b[37mStep \x1b[0m\x1b[38;5;105mbuild_model\x1b[37m has finished in \x1b[0m\x1b[38;5;105m12.345s\x1b[37m.\x1b[0m\n"
    "\x1b[37mUsing cached version of step \x1b[0m\x1b[38;5;105mexport_onnx\x1b[37m.\x1b[0m\n"
    "\x1b[37mStep \x1b[0m\x1b[38;5;105mpromote\x1b[37m has started.\x1b[0m\n"
    "WARNING 12-06 03:51:02 [config.py:412] some vLLM warning\n"
    "\x1b[31mFailed to run step \x1b[0m\x1b[38;5;105mpromote\x1b[31m: boom\x1b[0m\n"
    "\x1b[31mStep promote failed.\x1b[0m\n"
    "llmship.errors.GateFailure: gemma3-270m version 2 is not released: perplexity 21.3 > 1.0\n"
)


def test_one_line_per_step_on_the_terminal_and_everything_in_the_log(tmp_path):
    log = tmp_path / "run.log"
    out = subprocess.run([sys.executable, str(REPO / "scripts/step_progress.py"), str(log)], input=ZENML_RUN,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == f"full log: {log}"
    assert out[1].split() == ["ok", "build_model", "12.345s", "gguf:gemma", "->", "gemma3_text,", "268M",
                              "parameters,", "float32"]
    assert out[2].split() == ["ok", "export_onnx", "cached"]
    assert out[3].split()[:2] == ["FAIL", "promote"] and out[3].split()[2].endswith("s")
    assert len(out) == 4  # no noise, no colour codes
    assert log.read_text() == ZENML_RUN  # the log is the run's output, byte for byte


def test_a_missing_log_argument_is_one_line_and_exit_1():
    done = subprocess.run([sys.executable, str(REPO / "scripts/step_progress.py")], input="", capture_output=True,
                          text=True)
    assert done.returncode == 1 and done.stderr.strip() == "usage: step_progress.py LOG_FILE"
