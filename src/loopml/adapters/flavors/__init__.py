"""Model flavors: how a model object is written to a folder and read back, safely."""
