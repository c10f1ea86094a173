"""What training leaves and the package ships: run folders and the shipped model. Keras-free until a model
is built from them."""
