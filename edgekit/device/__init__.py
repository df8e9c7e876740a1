"""What the host does on a device, through the Connection seam: agent calls, blobs, installs."""
