"""One module per inference backend, each with `create(model, options)` returning an object
with `input_names` and `run(inputs) -> list of output arrays` (deploy/python/predictor.py
turns those into detections)."""
