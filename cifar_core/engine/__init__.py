"""The only Keras (on TensorFlow, JAX or PyTorch: runtime.py): the trainer process and its callbacks and input
pipeline, models, Grad-CAM, layer records, importing and checking model files, the speed probe."""
