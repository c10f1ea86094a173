"""The base every other package stands on, Keras-free: user-facing names, errors, atomic writes, locks,
provenance and Markdown tables."""
