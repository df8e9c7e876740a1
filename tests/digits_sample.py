"""What the committed sample model (samples/digits, made by scripts/make-sample-model) promises."""

from __future__ import annotations

from pathlib import Path

from edgekit.agent.preprocess import PreprocessSpec

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "digits"

# Written into the model's edgekit.model metadata by scripts/make-sample-model.
DIGITS_SPEC = PreprocessSpec(
    input_name="image",
    height=8,
    width=8,
    channels=1,
    layout="NCHW",
    color="gray",
    resize="stretch",
    scale=1 / 255,
    mean=(0.0,),
    std=(1.0,),
)
