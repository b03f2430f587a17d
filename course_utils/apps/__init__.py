"""Interactive ipywidgets apps of notebooks 02, 05 and 10."""
