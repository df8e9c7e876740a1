"""The one preprocessing implementation, shared by calibration and the camera service.

The host imports this module to turn calibration images into tensors, and the service runs
it on every camera frame, so what INT8 calibration saw is bit-for-bit what inference sees.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

# The host CLI imports PreprocessSpec (through config) for every command, and numpy alone costs
# more than most of them take to run; only the functions that touch pixels import it.
if TYPE_CHECKING:
    import numpy as np

COLORS = ("gray", "rgb", "bgr")
RESIZE_MODES = ("stretch", "letterbox")
LAYOUTS = ("NCHW", "NHWC")
# What the model's input takes: a uint8 input gets the raw pixels, never normalised ones.
DTYPES = ("float32", "float16", "uint8")


class PreprocessSpec:
    """How a BGR frame becomes the model's input tensor (batch of one)."""

    def __init__(
        self,
        input_name: str,
        height: int,
        width: int,
        channels: int = 3,
        layout: str = "NCHW",
        color: str = "rgb",
        resize: str = "stretch",
        scale: float = 1.0 / 255.0,
        mean: Sequence[float] = (0.0,),
        std: Sequence[float] = (1.0,),
        dtype: str = "float32",
    ) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be NCHW or NHWC, not {layout!r}")
        if dtype not in DTYPES:
            raise ValueError("dtype must be one of {}, not {!r}".format(", ".join(DTYPES), dtype))
        if dtype == "uint8" and (float(scale) != 1.0 or any(mean) or any(v != 1.0 for v in std)):
            raise ValueError("a uint8 input takes raw pixels: scale 1, mean 0 and std 1")
        if color not in COLORS:
            raise ValueError("color must be one of {}, not {!r}".format(", ".join(COLORS), color))
        if resize not in RESIZE_MODES:
            raise ValueError("resize must be one of {}, not {!r}".format(", ".join(RESIZE_MODES), resize))
        if (color == "gray") != (channels == 1):
            raise ValueError(f"color {color!r} does not fit {channels} input channel(s)")
        self.input_name = input_name
        self.height = int(height)
        self.width = int(width)
        self.channels = int(channels)
        self.layout = layout
        self.color = color
        self.resize = resize
        self.scale = float(scale)
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]
        self.dtype = dtype

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_name": self.input_name,
            "height": self.height,
            "width": self.width,
            "channels": self.channels,
            "layout": self.layout,
            "color": self.color,
            "resize": self.resize,
            "scale": self.scale,
            "mean": list(self.mean),
            "std": list(self.std),
            "dtype": self.dtype,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessSpec:
        return cls(**data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PreprocessSpec) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"PreprocessSpec({self.to_dict()!r})"


def _letterbox(image: np.ndarray, height: int, width: int) -> np.ndarray:
    import cv2
    import numpy as np

    from .detect import letterbox_geometry

    # One geometry for drawing here and for mapping detections back (detect.py).
    geometry = letterbox_geometry(image.shape[0], image.shape[1], height, width)
    new_w = int(round(geometry.scale_x * image.shape[1]))
    new_h = int(round(geometry.scale_y * image.shape[0]))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    # Grey padding (114) is what YOLO-family models were trained with.
    canvas: np.ndarray = np.full((height, width) + image.shape[2:], 114, dtype=image.dtype)
    top, left = int(geometry.top), int(geometry.left)
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas


def preprocess(frame_bgr: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Turn one BGR (or single-channel) uint8 frame into a batch of one of the model's input type."""
    import cv2
    import numpy as np

    image = frame_bgr
    if spec.color == "gray":
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    else:
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if spec.color == "rgb":
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if spec.resize == "letterbox":
        image = _letterbox(image, spec.height, spec.width)
    elif image.shape[0] != spec.height or image.shape[1] != spec.width:
        image = cv2.resize(image, (spec.width, spec.height), interpolation=cv2.INTER_AREA)
    if spec.dtype == "uint8":
        tensor = image.reshape(spec.height, spec.width, spec.channels)
    else:
        tensor = image.astype(np.float32).reshape(spec.height, spec.width, spec.channels)
        tensor *= np.float32(spec.scale)
        tensor -= np.asarray(spec.mean, dtype=np.float32)
        tensor /= np.asarray(spec.std, dtype=np.float32)
        # Normalised in float32, then rounded once: float16 inputs see the float32 values' nearest.
        tensor = tensor.astype(spec.dtype, copy=False)
    if spec.layout == "NCHW":
        tensor = tensor.transpose(2, 0, 1)
    batch: np.ndarray = np.ascontiguousarray(tensor[np.newaxis])
    return batch
