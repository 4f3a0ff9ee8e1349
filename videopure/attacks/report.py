"""From per-clip rows to the report: accuracies with Wilson intervals, per class, sanity checks, Markdown, figures.

A clip's row holds the predictions of R purifications of each final clip (clean and per attack and budget).
Worst case: the clip counts as correct only if all R predictions are right. Mean: the fraction of right
predictions, averaged over clips. Both come with 95% Wilson intervals over clips (the mean's interval treats
each clip as one trial, as the R draws of one clip are not independent).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from videopure.attacks.config import Protocol
from videopure.config import budget_label, parse_budget
from videopure.figures import save_frame_grid
from videopure.manifest import atomic_write

Row = dict[str, Any]
PASS, FAIL, WARN, NOTE = "PASS", "FAIL", "WARN", "NOTE"


class SanityCheckError(RuntimeError):
    """A sanity check failed: the numbers should not be trusted; the report says which and why."""


def wilson(successes: float, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (successes may be fractional)."""
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def attack_key(label: str, budget: float | str) -> str:
    return f"{label}@{budget_label(budget)}"


def undefended_key(norm: str, budget: float | str) -> str:
    return f"{norm}@{budget_label(budget)}"


def summarize(rows: Sequence[Row], predictions: Callable[[Row], Sequence[int] | None], class_names: Sequence[str]) -> dict[str, Any]:
    """Worst-case and mean accuracy (with Wilson intervals) over the rows that have predictions, and per class."""
    scored = [(row, [p == row["label"] for p in preds]) for row in rows if (preds := predictions(row)) is not None]
    per_class: dict[str, dict[str, Any]] = {}
    for name in class_names:
        mine = [correct for row, correct in scored if row["class_name"] == name]
        if mine:
            per_class[name] = {"n": len(mine), "worst": _mean(all(c) for c in mine), "mean": _mean(_mean(c) for c in mine)}
    n = len(scored)
    worst = sum(all(c) for _, c in scored)
    mean = sum(_mean(c) for _, c in scored)
    return {
        "n": n,
        "worst": {"accuracy": worst / n if n else None, "correct": worst, "ci95": wilson(worst, n)},
        "mean": {"accuracy": mean / n if n else None, "ci95": wilson(mean, n)},
        "per_class": per_class,
    }


def build_report(rows: Sequence[Row], protocol: Protocol, class_names: Sequence[str], run: dict[str, Any]) -> dict[str, Any]:
    """The report of ``rows`` (in clip order); ``run`` describes the models and data."""
    ok = [row for row in rows if row["status"] == "ok"]
    report: dict[str, Any] = {
        "run": run,
        "clips": {"evaluated": len(ok), "failed": [{"id": r["id"], "error": r.get("error")} for r in rows if r["status"] != "ok"]},
        "clean": summarize(ok, lambda r: r["clean"]["pred"], class_names),
        "undefended": {
            "clean": summarize(ok, lambda r: [r["undefended"]["clean_pred"]], class_names),
            "pgd": [
                {"norm": norm, "budget": label, "budget_value": value, "steps": protocol.evaluation.undefended_steps,
                 **summarize(ok, lambda r, k=undefended_key(norm, label): _single(r["undefended"]["pgd"].get(k)), class_names)}
                for norm, label, value in undefended_budgets(protocol)
            ] if protocol.evaluation.undefended_steps > 0 else [],
        },
        "attacks": [_attack_entry(ok, attack, budget, class_names) for attack in protocol.attacks for budget in attack.budgets],
        "huge_budget": None,
    }
    sanity = protocol.sanity
    if sanity.huge_budget is not None and protocol.attacks:
        report["huge_budget"] = {
            "norm": "linf", "budget": budget_label(sanity.huge_budget), "steps": sanity.huge_steps, "eot": sanity.huge_eot,
            **summarize(ok, lambda r: r.get("huge", {}).get("pred"), class_names),
        }
    report["sanity"] = sanity_checks(report, protocol)
    return report


def undefended_budgets(protocol: Protocol) -> list[tuple[str, str, float]]:
    """Distinct (norm, budget label, value) over all attacks, by norm then value."""
    seen: dict[tuple[str, float], str] = {}
    for attack in protocol.attacks:
        for budget in attack.budgets:
            seen.setdefault((attack.norm, parse_budget(budget)), budget_label(budget))
    return [(norm, label, value) for (norm, value), label in sorted(seen.items())]


def _attack_entry(rows: Sequence[Row], attack, budget, class_names: Sequence[str]) -> dict[str, Any]:
    key = attack_key(attack.label, budget)
    records = [row["attacks"][key] for row in rows if key in row.get("attacks", {})]
    return {
        "label": attack.label,
        "kind": attack.kind,
        "norm": attack.norm,
        "budget": budget_label(budget),
        "budget_value": parse_budget(budget),
        "grad": attack.grad_mode or "none (transfer)",
        "surrogate": attack.surrogate,
        "n_iter": attack.iterations,
        "eot_iter": attack.eot,
        **summarize(rows, lambda r: r["attacks"][key]["pred"] if key in r.get("attacks", {}) else None, class_names),
        "zero_grad_clips": sum(bool(r["zero_grad"]) for r in records),
        "attack_success_rate": _mean(r["success_rate"] for r in records),
        "max_perturbation": {"linf": max((r["linf"] for r in records), default=0.0), "l2": max((r["l2"] for r in records), default=0.0)},
    }


def sanity_checks(report: dict[str, Any], protocol: Protocol) -> list[dict[str, str]]:
    """PASS/FAIL/WARN/NOTE lines; FAIL means the run's numbers cannot be trusted."""
    n = report["clean"]["n"]
    if n == 0:
        return [_check("clips", FAIL, "no clip was evaluated")]
    sanity = protocol.sanity
    slack = sanity.slack_clips / n
    checks = []
    for entry in report["undefended"]["pgd"]:
        accuracy = entry["worst"]["accuracy"]
        status = PASS if accuracy <= sanity.max_undefended_accuracy else FAIL
        checks.append(_check(
            f"undefended classifier under PGD {entry['norm']} {entry['budget']}", status,
            f"accuracy {_pct(accuracy)} (must be <= {_pct(sanity.max_undefended_accuracy)}; otherwise the attack or the budget is broken)",
        ))
    clean = report["clean"]["worst"]["accuracy"]
    for entry in report["attacks"]:
        accuracy = entry["worst"]["accuracy"]
        checks.append(_check(
            f"{entry['label']} {entry['norm']} {entry['budget']} <= clean", PASS if accuracy <= clean + slack else FAIL,
            f"robust {_pct(accuracy)} vs clean {_pct(clean)} (worst case; slack {sanity.slack_clips} clip)",
        ))
    checks += _monotone_checks(report["attacks"], slack, sanity.slack_clips)
    huge = report["huge_budget"]
    if huge is not None:
        accuracy = huge["worst"]["accuracy"]
        checks.append(_check(
            f"huge budget (Linf {huge['budget']}, PGD {huge['steps']} steps)", PASS if accuracy <= sanity.max_huge_accuracy else FAIL,
            f"accuracy {_pct(accuracy)} (must be <= {_pct(sanity.max_huge_accuracy)}; otherwise gradients do not reach the input)",
        ))
    checks += _bpda_vs_adjoint(report["attacks"], slack)
    masked = [f"{e['label']} {e['budget']} ({e['zero_grad_clips']} clips)" for e in report["attacks"] if e["zero_grad_clips"]]
    checks.append(_check(
        "zero gradients", WARN if masked else PASS,
        f"exactly zero input gradients in {', '.join(masked)}: gradient masking?" if masked else "no attack met an all-zero input gradient",
    ))
    return checks


def _monotone_checks(entries: Sequence[dict[str, Any]], slack: float, slack_clips: int) -> list[dict[str, str]]:
    checks = []
    for label in dict.fromkeys(e["label"] for e in entries):
        series = sorted((e for e in entries if e["label"] == label), key=lambda e: e["budget_value"])
        if len(series) < 2:
            continue
        rises = [
            f"{_pct(a['worst']['accuracy'])} at {a['budget']} -> {_pct(b['worst']['accuracy'])} at {b['budget']}"
            for a, b in zip(series, series[1:])
            if b["worst"]["accuracy"] > a["worst"]["accuracy"] + slack
        ]
        checks.append(_check(
            f"{label}: accuracy non-increasing in the budget", FAIL if rises else PASS,
            "rises: " + "; ".join(rises) if rises else f"over {', '.join(e['budget'] for e in series)} (slack {slack_clips} clip)",
        ))
    return checks


def _bpda_vs_adjoint(entries: Sequence[dict[str, Any]], slack: float) -> list[dict[str, str]]:
    checks = []
    for bpda in (e for e in entries if e["grad"] == "bpda"):
        for full in (e for e in entries if e["grad"] in ("adjoint", "direct")):
            if (full["norm"], full["budget_value"]) != (bpda["norm"], bpda["budget_value"]):
                continue
            a, b = full["worst"]["accuracy"], bpda["worst"]["accuracy"]
            stronger = b < a - slack
            checks.append(_check(
                f"BPDA vs {full['grad']} at {full['norm']} {full['budget']}", WARN if stronger else NOTE,
                f"{bpda['label']} {_pct(b)} vs {full['label']} {_pct(a)}"
                + (": the identity gradient beats the full gradient: check the adjoint path (obfuscated gradients?)" if stronger else ""),
            ))
    if not checks:
        checks.append(_check("BPDA vs adjoint", NOTE, "not compared (configure bpda-eot and an adjoint attack at the same budget)"))
    return checks


def failed_checks(report: dict[str, Any]) -> list[dict[str, str]]:
    return [c for c in report["sanity"] if c["status"] == FAIL]


# -- writing ---------------------------------------------------------------------------------------------------------


def write_report(report: dict[str, Any], out: Path, figure_paths: Sequence[Path] = ()) -> None:
    """``report.json`` and ``report.md`` under ``out`` (atomically)."""
    atomic_write(out / "report.json", lambda p: p.write_text(json.dumps(report, indent=2, sort_keys=False)))
    atomic_write(out / "report.md", lambda p: p.write_text(render_markdown(report, [f.relative_to(out) for f in figure_paths])))


def render_markdown(report: dict[str, Any], figures: Sequence[Path] = ()) -> str:
    run = report["run"]
    lines = [f"# Robustness evaluation: {run.get('name', 'videopure')}", ""]
    lines += [f"- {key}: {value}" for key, value in run.items() if key != "name"]
    failed = report["clips"]["failed"]
    repeats = run.get("repeats", "R")
    lines += [
        f"- clips evaluated: {report['clips']['evaluated']}" + (f" ({len(failed)} failed to load, listed below)" if failed else ""),
        "",
        f"## Accuracy ({repeats} fresh purifications per final clip)",
        "",
        "Worst case: a clip counts only if all purifications classify it correctly. Mean: fraction of correct "
        "purifications. Brackets: 95% Wilson interval over clips.",
        "",
        "| evaluation | norm | budget | gradient | EOT | iters | worst-case accuracy | mean accuracy | zero-grad clips |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        _table_row("clean (defended)", "-", "-", "-", "-", "-", report["clean"]),
    ]
    for entry in report["attacks"]:
        lines.append(_table_row(
            entry["label"], entry["norm"], entry["budget"], entry["grad"], entry["eot_iter"], entry["n_iter"], entry,
            entry["zero_grad_clips"],
        ))
    if report["huge_budget"] is not None:
        huge = report["huge_budget"]
        lines.append(_table_row("sanity: huge budget (pgd)", "linf", huge["budget"], "first attack's", huge["eot"], huge["steps"], huge))
    lines += ["", "Undefended classifier (no purifier, deterministic):", ""]
    lines += ["| evaluation | norm | budget | accuracy |", "| --- | --- | --- | --- |"]
    lines.append(f"| clean | - | - | {_acc(report['undefended']['clean']['worst'])} |")
    for entry in report["undefended"]["pgd"]:
        lines.append(f"| PGD-{entry['steps']} | {entry['norm']} | {entry['budget']} | {_acc(entry['worst'])} |")
    lines += ["", "## Per class (worst case)", ""]
    columns = [("clean", report["clean"])] + [(f"{e['label']} {e['budget']}", e) for e in report["attacks"]]
    lines += ["| class | clips | " + " | ".join(name for name, _ in columns) + " |", "| --- " * (len(columns) + 2) + "|"]
    for name, stats in report["clean"]["per_class"].items():
        cells = [_pct(entry["per_class"].get(name, {}).get("worst")) for _, entry in columns]
        lines.append(f"| {name} | {stats['n']} | " + " | ".join(cells) + " |")
    lines += ["", "## Sanity checks", ""]
    lines += [f"- **{c['status']}** {c['check']}: {c['detail']}" for c in report["sanity"]]
    cost = report.get("cost")
    if cost:
        lines += ["", "## Cost", ""] + [f"- {key}: {value}" for key, value in cost.items()]
    if failed:
        lines += ["", "## Clips that failed to load", ""] + [f"- {f['id']}: {f['error']}" for f in failed]
    if figures:
        lines += ["", "## Figures", ""] + [f"![{path.stem}]({path.as_posix()})" for path in figures]
    lines += ["", "## How to read this report", "", *HOW_TO_READ]
    return "\n".join(lines) + "\n"


HOW_TO_READ = [
    "- The robust accuracy to quote is the worst case under the strongest attack at the budget.",
    "- Attacks never see the evaluation's purifications: every final clip is purified afresh R times.",
    "- Any FAIL above means the numbers are not trustworthy (broken attack, budget or gradients); WARN lines name "
    "signs of gradient masking.",
    "- Intervals are wide for few clips: compare defences on the same clips (same run seed) and many clips.",
]


def _table_row(name, norm, budget, grad, eot, iters, stats, zero="-") -> str:
    return f"| {name} | {norm} | {budget} | {grad} | {eot} | {iters} | {_acc(stats['worst'])} | {_acc(stats['mean'])} | {zero} |"


def _acc(stat: dict[str, Any]) -> str:
    if stat["accuracy"] is None:
        return "n/a"
    low, high = stat["ci95"]
    return f"{100 * stat['accuracy']:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def _single(pred: int | None) -> list[int] | None:
    return None if pred is None else [pred]


def _check(check: str, status: str, detail: str) -> dict[str, str]:
    return {"check": check, "status": status, "detail": detail}


# -- figures ---------------------------------------------------------------------------------------------------------


def save_clip_figure(arrays: Path, path: Path, gain: float) -> Path:
    """Clean / adversarial / perturbation × gain (grey is zero) / purified adversarial frames of one saved clip."""
    with np.load(arrays) as data:
        clean, adversarial, purified = (torch.from_numpy(data[k].astype(np.float32)) for k in ("clean", "adversarial", "purified"))
        title = str(data["title"])
    rows = {
        "clean": clean,
        "adversarial": adversarial,
        f"perturbation x{gain:g}": (0.5 + gain * (adversarial - clean)).clamp(0, 1),
        "purified\n(adversarial)": purified.clamp(0, 1),
    }
    return save_frame_grid(rows, path, title=title)


def save_budget_figure(report: dict[str, Any], path: Path) -> Path | None:
    """Accuracy vs budget (worst case and mean, 95% intervals) for attacks run at several budgets."""
    labels = [label for label in dict.fromkeys(e["label"] for e in report["attacks"]) if sum(e["label"] == label for e in report["attacks"]) > 1]
    if not labels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.axhline(report["clean"]["worst"]["accuracy"] or 0.0, color="grey", linestyle=":", label="clean (worst)")
    for label in labels:
        series = sorted((e for e in report["attacks"] if e["label"] == label), key=lambda e: e["budget_value"])
        x = [e["budget_value"] for e in series]
        for kind, style in (("worst", "-o"), ("mean", "--s")):
            y = [e[kind]["accuracy"] for e in series]
            errors = [[v - e[kind]["ci95"][0] for v, e in zip(y, series)], [e[kind]["ci95"][1] - v for v, e in zip(y, series)]]
            ax.errorbar(x, y, yerr=errors, fmt=style, capsize=3, label=f"{label} ({kind})")
        ax.set_xticks(x, [e["budget"] for e in series])
    ax.set_xlabel(f"budget ({series[0]['norm']})")
    ax.set_ylabel("robust accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
