"""Shadow movers: find an object's cast shadow, lift it at the old place, cast it at the new."""
