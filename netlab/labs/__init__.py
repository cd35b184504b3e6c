"""Labs: the lab file format, its loader, the step runner and the expectations.

    lab = load_lab("labs/02-veth.yaml")      # LabError with file:line on any mistake
    result = run_lab(lab)                    # RunResult: .ok, .steps, .world, .to_json()
    find_lab("02") -> Path                   # a bundled lab by number or name
"""

from netlab.labs.catalog import bundled, find_lab, labs_dir
from netlab.labs.loader import load_lab, parse_lab
from netlab.labs.model import Lab, LanSpec, Step
from netlab.labs.runner import RunResult, Runner, run_lab

__all__ = ["Lab", "LanSpec", "RunResult", "Runner", "Step", "bundled", "find_lab", "labs_dir",
           "load_lab", "parse_lab", "run_lab"]
