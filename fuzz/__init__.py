"""Coverage-guided fuzz targets (atheris) for mrapsim's parsers of hostile input; see fuzz/README.md."""
