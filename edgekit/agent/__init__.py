"""The device payload of edgekit.

Everything under this package is copied to the Jetson as one zipapp and run with the
device's own ``python3`` (3.8 on JetPack 5 up to 3.12 on JetPack 7). It imports only the
standard library, numpy and cv2; a backend imports its runtime (onnxruntime, tensorrt)
when it is chosen. It never imports the host package.
"""

AGENT_PROTOCOL = 1
# The engine cache: the service's StateDirectory (firmware_overlay/), where the build unit
# the host starts writes too. One value for both, since the service takes the default.
ENGINES_DIR = "/var/lib/edgekit/engines"
