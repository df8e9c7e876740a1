# Shared set-up for scripts/demo and scripts/test: system packages and the locked venv.
# Sourced, not run. Installs only what is missing, so a second run is fast.

# The twin boots a container and mounts an overlay: that needs root.
require_root() {
  if [ "$(id -u)" != 0 ]; then
    exec sudo --preserve-env=CI,EDGEKIT_CACHE,EDGEKIT_TWIN_CACHE "$0" "$@"
  fi
}

install_system_packages() {
  # The camera tests run real peers: an RTSP server (GStreamer's, driven from Debian's
  # python3-gi), an MQTT broker, and ffmpeg to encode the benchmark's video; rsync and iproute2
  # are scripts/bench-transfer's peer and its rate-limited link.
  local wanted=(systemd-container debootstrap openssh-client openssh-server util-linux rsync iproute2
    python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-tools gstreamer1.0-plugins-base
    gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
    mosquitto mosquitto-clients ffmpeg)
  local missing=()
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing system packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

install_python_env() {
  export UV_PYTHON_DOWNLOADS=never
  if ! command -v uv >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check uv==0.13.8
  fi
  uv sync --frozen --quiet --python python3
}
