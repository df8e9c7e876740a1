"""``edgekit audit``: what a firmware tree holds that a product may not ship."""
