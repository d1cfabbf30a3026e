"""The run directory: its files, schemas, atomic writes and locks (rundir), and the run registry (runs). Imports the
model layer and the root modules; never TensorFlow."""
