from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent

setup(
    name="videopure",
    version="0.1.0",
    description="Diffusion purification (DiffPure) for video action recognition, with adaptive robustness evaluation",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["videopure", "videopure.*"]),
    package_data={"videopure": ["assets/*.pt"]},  # the demo's trained weights (preset `demo`)
    install_requires=[
        "torch>=2.1",
        "torchvision",
        "torchsde>=0.2.6",
        "decord>=0.6.0",
        "pytorchvideo>=0.1.5",
        "av>=11",
        "einops>=0.7",
        "ray[data]>=2.9",
        "pyyaml>=6",
        "tqdm>=4.60",
        "numpy",
        "matplotlib>=3.7",
    ],
    extras_require={"test": ["pytest>=7", "pyautoattack==0.2.0"]},  # the reference APGD the tests compare against
    entry_points={"console_scripts": ["videopure=videopure.cli:main"]},
)
