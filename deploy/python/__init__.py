"""Python deployment: `python deploy/python/infer.py --model_dir DIR --image_file IMG`."""
