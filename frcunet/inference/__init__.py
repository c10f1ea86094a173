"""Using a trained model: masks for new images (Keras or ONNX Runtime) and exports to other runtimes. Kept
empty: prediction with ONNX Runtime must not import Keras."""
