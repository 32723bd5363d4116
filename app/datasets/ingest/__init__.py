"""Reading uploads: the input-format table (formats.py) and one reader per kind of input."""
