"""Numbers and charts from what runs wrote: scores, calibration, statistics, comparisons, layer records, Altair
charts, caveats. numpy/pandas/scikit-learn/scipy only: never TensorFlow, Keras or the engine."""
