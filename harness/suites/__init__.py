"""What runs in the guest: the registry of test programs, upstream kselftests as suites, and the
mapping and cross-check between our cases and upstream's."""
