"""``videopure info``: versions, compute device and the available presets."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform

import torch

from videopure.diffusion.presets import PRESETS

PACKAGES = ("videopure", "torch", "torchvision", "torchsde", "decord", "av", "pytorchvideo", "einops", "ray")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("info", help="versions, compute device and available presets")
    parser.add_argument("--json", action="store_true", help="print as JSON")
    parser.set_defaults(func=run)


def collect() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "packages": versions,
        "device": {
            "cuda": cuda,
            "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
            "cpu_threads": torch.get_num_threads(),
        },
        "diffusion_presets": {
            name: {"image_size": p.image_size, "t_star": p.default_t_star, "checkpoint": p.checkpoint_file, "about": p.description}
            for name, p in PRESETS.items()
        },
    }


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"python {info['python']}")
    for name, version in info["packages"].items():
        print(f"  {name:<13} {version or 'not installed'}")
    device = info["device"]
    print("device: " + (", ".join(device["gpus"]) if device["cuda"] else f"cpu ({device['cpu_threads']} threads)"))
    print("diffusion presets:")
    for name, p in info["diffusion_presets"].items():
        print(f"  {name:<16} {p['image_size']}px  t*={p['t_star']}  file {p['checkpoint']}  — {p['about']}")
    return 0
