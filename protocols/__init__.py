"""Session protocols: the file format, its validation, the built-in protocols and the controllers."""
