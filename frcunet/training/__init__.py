"""Training a model on a prepared folder: the run (trainer), its callbacks, learning-rate schedules, losses,
recipes and data-parallel distribution. Kept empty so that the command line reads the Keras-free recipes
without loading a backend."""
