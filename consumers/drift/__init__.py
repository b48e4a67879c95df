"""The drift loop: the monitor that watches each stream's scores (``monitor``) and the retrain it
triggers (``retrain``: candidate, shadow evaluation, promotion)."""
