"""The only TensorFlow and Keras: the trainer process and its callbacks and input pipeline, models, Grad-CAM, layer
records, importing and checking model files, the speed probe."""
