"""TensorRT on the Jetson: build an engine from the shipped ONNX on the device, then run it.

The same code runs against TensorRT 8.5 (JetPack 5.1) up to 11 (JetPack 7.2.2+): every
call that differs between releases is chosen by asking the imported ``tensorrt`` module
what it has (``api.py``), never by parsing its version. ``tensorrt`` and the CUDA seam are passed
in, so the contract tests run the same code against a strict stand-in of each release.
"""
