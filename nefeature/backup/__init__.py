"""Remote backup: the sync channel between the two devices, and what it carries."""
