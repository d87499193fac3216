"""Teams: one index built in CI, used by everyone (snapshots; the shared store)."""
