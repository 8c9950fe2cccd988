"""The training guide's script path for `marauder train-multiscale`: a thin entry point, all logic is in the package."""

from marauder.cli import script_main

if __name__ == "__main__":
    script_main("train-multiscale")
