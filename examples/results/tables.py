"""The result tables of examples/results/README.md, printed from the runs' ``report.json`` files.

    python examples/results/tables.py       # one markdown table per units folder (top/, std/)

Rows: each folder below ``top/`` and ``std/`` that holds a ``report.json`` written by ``fastinterp experiment``,
ordered by dataset and size. Columns: ``lam*``, the network, the floor (Linear at the floor's many steps), both
schedules at 10 steps, the two ratios to the floor with the goals' verdicts, and the process CPU time.
"""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAMES = {"ac": "Allen-Cahn N = {n}", "ns": "Navier-Stokes {n}²", "grf": "Gaussian field {n}²"}
ORDER = {"ac": 0, "ns": 1, "grf": 2}


def row(folder: Path, r: dict) -> str:
    verdict = {g["name"].split(" at ")[0].split(" seconds")[0]: "PASS" if g["passed"] else "FAIL" for g in r["goals"]}
    lip, lin, cpu = r["error_lipschitz"] / r["floor_linear"], r["error_linear"] / r["floor_linear"], r["cpu_seconds"]
    s = r["preset_settings"]
    return (
        f"| {NAMES[r['dataset']].format(n=r['n'])} (`{folder.parent.name}/{folder.name}/`) | {r['lam']:.2e} | "
        f"{r['parameters'] / 1e3:.0f}k, {s['steps']} steps | {r['floor_linear']:.4f} | {r['error_linear']:.4f} | "
        f"{r['error_lipschitz']:.4f} | {lip:.2f} {verdict['Lipschitz']} | {lin:.2f} {verdict['Linear']} | "
        f"{cpu:.0f} s {verdict['process CPU']} |"
    )


def main() -> None:
    for units in ("top", "std"):
        runs = []
        for path in sorted((HERE / units).glob("*/report.json")):
            r = json.loads(path.read_text())
            runs.append((ORDER[r["dataset"]], r["n"], path.parent, r))
        if not runs:
            continue
        floor = "/".join(sorted({str(r["floor_steps"]) for *_, r in runs}))
        steps = "/".join(sorted({str(r["sample_steps"]) for *_, r in runs}))
        print(f"\n{units} units:\n")
        print(f"| data | lam* | network | floor ({floor} steps) | Linear, {steps} steps | Lipschitz, {steps} steps | "
              "Lipschitz / floor | Linear / floor | process CPU |")  # fmt: skip
        print("|---" * 9 + "|")
        for *_, folder, r in sorted(runs, key=lambda x: x[:2]):
            print(row(folder, r))


if __name__ == "__main__":
    main()
