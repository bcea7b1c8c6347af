"""``./dev mutants``: mutation testing of the safety-critical modules with mutmut, and the score.

mutmut (configured in ``[tool.mutmut]`` of pyproject.toml) copies the packages to
``./mutants``, mutates the files it is told to, and runs each mutant against the
tests of the fast unit-test selection that call the mutated function. This runner
picks the functions that count (:data:`MUTATED`: whole modules, the session store's
writer and the OpenVR display's input handling), runs them from scratch, and
prints per-module figures, the surviving mutants with their diffs, and as its
last line::

    mutation score: K/T killed (P %)

Killed = failed a test, or ran past mutmut's time limit (an endless loop a test
would hang on) or crashed the interpreter. T counts every mutant of the selected
functions except those listed in ``tests/mutants-equivalent.txt`` (see its
header); they are reported on their own line. A listed mutant whose mutated code
no longer matches the file is not excused.

    ./dev mutants                       every module
    ./dev mutants therapy/safety.py     only these files (for working on their tests)
    ./dev mutants --no-run              the last run's figures again
    ./dev mutants --stub MUTANT...      lines for tests/mutants-equivalent.txt
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EQUIVALENT_FILE = ROOT / "tests" / "mutants-equivalent.txt"

#: file -> the mutmut function keys (globs) whose mutants count; "ǁ" separates a class from its method.
MUTATED: dict[str, tuple[str, ...]] = {
    "therapy/safety.py": ("*",),  # the safety supervisor
    "therapy/commands.py": ("*",),  # commands, the queue, patient input -> command
    "protocols/controller.py": ("*",),  # the exposure controllers
    "protocols/confirmation.py": ("*",),  # the therapist-confirmation gate
    "biofeedback/hrm.py": ("*",),  # the BLE heart-rate (0x2A37) parser and the strap encoder
    "biofeedback/rr.py": ("*",),  # the RR cleaner
    "therapy/store/sqlite.py": ("xǁSessionWriterǁ*",),  # the session store's writer only
    # the OpenVR display's input handling: runtime events and controller buttons -> PatientInput, thumbsticks
    "environments/displays/openvr.py": ("xǁOpenVRDisplayǁpoll__*", "xǁOpenVRDisplayǁ_thumbstick_x__*"),
}

KILLED = {"killed", "timeout", "segfault"}


def module_of(path: str) -> str:
    return path[: -len(".py")].replace("/", ".")


def patterns_for(path: str) -> list[str]:
    return [f"{module_of(path)}.{glob}" for glob in MUTATED[path]]


def selected(key: str, path: str) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns_for(path))


def load_equivalents() -> dict[str, tuple[str, str]]:
    """``name :: mutated code :: reason`` lines -> {name: (mutated code, reason)}."""
    out: dict[str, tuple[str, str]] = {}
    if not EQUIVALENT_FILE.exists():
        return out
    for n, line in enumerate(EQUIVALENT_FILE.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.split(" :: ")]
        if len(parts) != 3 or not all(parts):
            sys.exit(f"{EQUIVALENT_FILE}:{n}: expected 'mutant name :: mutated code :: reason', got {line!r}")
        out[parts[0]] = (parts[1], parts[2])
    return out


def mutated_lines(diff: str) -> str:
    """The mutant's side of its diff, as one line (how an equivalence entry names its code)."""
    lines = [ln[1:].strip() for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    return " / ".join(lines)


def run_mutmut(paths: list[str], max_children: int) -> float:
    mutants_dir = ROOT / "mutants"
    shutil.rmtree(mutants_dir, ignore_errors=True)  # every run starts clean: no stale results, no stale copies
    mutants_dir.mkdir()
    (mutants_dir / ".gitignore").write_text("*\n")  # mutmut's work tree never shows up in git
    patterns = [p for path in paths for p in patterns_for(path)]
    log_path = mutants_dir / "mutmut-run.log"
    mutmut = Path(sys.executable).with_name("mutmut")
    cmd = [str(mutmut), "run", "--max-children", str(max_children), *patterns]
    print(f"vrex: mutmut on {len(paths)} file(s) with {max_children} worker(s); log in {log_path.relative_to(ROOT)}",
          file=sys.stderr, flush=True)
    t0 = time.monotonic()
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    with open(log_path, "w") as log:
        rc = subprocess.call(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    elapsed_s = time.monotonic() - t0
    if rc != 0:
        tail = log_path.read_text(errors="replace").replace("\r", "\n").splitlines()[-40:]
        print("\n".join(tail), file=sys.stderr)
        sys.exit(f"vrex: mutmut failed (exit {rc}); the whole log is {log_path}")
    return elapsed_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", help="only these files (keys of MUTATED)")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--no-run", action="store_true", help="only report on the last run's results")
    parser.add_argument("--stub", nargs="+", metavar="MUTANT",
                        help="print tests/mutants-equivalent.txt lines for these mutants of the last run (reason to fill in)")
    args = parser.parse_args()
    if args.stub:
        os.chdir(ROOT)
        from mutmut.mutation.diff_apply import get_diff_for_mutant

        for key in args.stub:
            path = next(p for p in MUTATED if key.startswith(module_of(p) + "."))
            print(f"{key} :: {mutated_lines(get_diff_for_mutant(key, path=path))} :: REASON")
        return
    paths = args.files or list(MUTATED)
    unknown = [p for p in paths if p not in MUTATED]
    if unknown:
        sys.exit(f"vrex: not a mutated file: {', '.join(unknown)} (choose from {', '.join(MUTATED)})")
    os.chdir(ROOT)
    elapsed_s = None if args.no_run else run_mutmut(paths, args.max_children)

    from mutmut.mutation.diff_apply import get_diff_for_mutant  # after the run: reads the mutants/ it made
    from mutmut.stats import status_by_exit_code

    equivalents = load_equivalents()
    total_killed = total_counted = total_equivalent = 0
    survivors: list[tuple[str, str, str]] = []
    stale: list[str] = []
    print()
    print(f"{'module':<34} {'killed':>7} {'counted':>8} {'score':>8} {'equivalent':>11}")
    for path in paths:
        meta = json.loads((ROOT / "mutants" / f"{path}.meta").read_text())
        killed = counted = equivalent = 0
        for key, code in sorted(meta["exit_code_by_key"].items()):
            if not selected(key, path):
                continue
            status = status_by_exit_code[code]
            if status in KILLED:
                killed += 1
                counted += 1
                continue
            diff = get_diff_for_mutant(key, path=path)
            entry = equivalents.get(key)
            if entry is not None and status == "survived" and entry[0] == mutated_lines(diff):
                equivalent += 1
                continue
            if entry is not None:
                stale.append(f"{key}: listed as equivalent but now {status}, mutated code {mutated_lines(diff)!r}")
            counted += 1
            survivors.append((key, status, diff))
        score = 100.0 * killed / counted if counted else 100.0
        print(f"{path:<34} {killed:>7} {counted:>8} {score:>7.1f}% {equivalent:>11}")
        total_killed += killed
        total_counted += counted
        total_equivalent += equivalent

    if survivors:
        print(f"\n{len(survivors)} mutant(s) not killed:")
        for key, status, diff in survivors:
            print(f"\n--- {key} ({status})")
            print("\n".join(diff.splitlines()[2:]))
    if stale:
        print("\nentries of tests/mutants-equivalent.txt that no longer apply (fix or remove them):")
        print("\n".join(stale))
    print()
    if elapsed_s is not None:
        print(f"mutmut ran for {elapsed_s / 60:.1f} min")
    print(f"equivalent mutants (tests/mutants-equivalent.txt, not in the score): {total_equivalent}")
    pct = 100.0 * total_killed / total_counted if total_counted else 100.0
    print(f"mutation score: {total_killed}/{total_counted} killed ({pct:.1f} %)")


if __name__ == "__main__":
    main()
